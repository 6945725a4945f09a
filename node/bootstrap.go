package node

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/berth-registry/berth/meta"
)

// Names created on a cluster's first start, so that right after `make run` the
// admin can `docker login` and push HOST/library/app:1.
const (
	bootstrapAdmin     = "admin"
	bootstrapProject   = "default"
	bootstrapWorkspace = "library"
)

// adminPassword returns the configured bootstrap password, reading
// AdminPasswordFile when it is set.
func (c *Config) adminPassword() (string, error) {
	if c.AdminPasswordFile == "" {
		return c.AdminPassword, nil
	}
	f, err := os.Open(c.AdminPasswordFile)
	if err != nil {
		return "", fmt.Errorf("node: admin password file: %w", err)
	}
	defer f.Close()
	line, err := bufio.NewReader(f).ReadString('\n')
	if line = strings.TrimRight(line, "\r\n"); line == "" {
		return "", fmt.Errorf("node: admin password file %s is empty (%v)", c.AdminPasswordFile, err)
	}
	return line, nil
}

// bootstrap runs on the leader at start. It makes sure the cluster has a token
// signing key, and on a cluster without users it creates the cloud admin, the
// project "default" and its private workspace "library". Every step is a Raft
// command, so a restart or another node sees the same result.
func (n *Node) bootstrap(ctx context.Context) error {
	state := n.fsm.Reader()
	keys, err := meta.SigningKeys(state)
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		if err := n.Propose(ctx, newSigningKey(n.clock())); err != nil {
			return fmt.Errorf("node: bootstrap signing key: %w", err)
		}
	}
	hasUsers, err := meta.HasUsers(state)
	if err != nil || hasUsers {
		return err
	}
	password, err := n.cfg.adminPassword()
	if err != nil {
		return err
	}
	generated := password == ""
	if generated {
		var b [18]byte
		if _, err := rand.Read(b[:]); err != nil {
			return err
		}
		password = base64.RawURLEncoding.EncodeToString(b[:])
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return err
	}
	now := n.clock()
	for _, c := range []meta.Command{
		&meta.PutProject{Name: bootstrapProject, Description: "Created at first start", Create: true, Time: now},
		&meta.PutWorkspace{Name: bootstrapWorkspace, Project: bootstrapProject, Visibility: meta.Private, Create: true, Time: now},
		&meta.PutUser{Name: bootstrapAdmin, PasswordHash: hash, CloudAdmin: true, Create: true, Time: now},
		&meta.SetMember{Project: bootstrapProject, User: bootstrapAdmin, Role: meta.RoleProjectAdmin, Time: now},
	} {
		if err := n.Propose(ctx, c); err != nil && !errors.Is(err, meta.ErrExists) {
			return fmt.Errorf("node: bootstrap: %w", err)
		}
	}
	if generated {
		path := filepath.Join(n.cfg.DataDir, "admin-password")
		if err := os.WriteFile(path, []byte(password+"\n"), 0o600); err != nil {
			return fmt.Errorf("node: write %s: %w", path, err)
		}
		n.log.Warn("created cloud admin with a generated password; it is shown only this once",
			"user", bootstrapAdmin, "password", password, "also_in", path)
	} else {
		n.log.Info("created cloud admin", "user", bootstrapAdmin)
	}
	return nil
}

// newSigningKey generates a P-256 key for ES256 tokens.
func newSigningKey(now time.Time) *meta.PutSigningKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(fmt.Sprintf("node: generate signing key: %v", err)) // crypto/rand does not fail
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		panic(fmt.Sprintf("node: encode signing key: %v", err))
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	return &meta.PutSigningKey{ID: hex.EncodeToString(id[:]), Algorithm: "ES256", Private: der, Time: now}
}

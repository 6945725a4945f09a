package api

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/berth-registry/berth/meta"
)

// Bearer tokens are ES256 JWTs in the shape of the Docker registry token
// specification (distribution docs/spec/auth/jwt.md): iss, sub, aud, exp, nbf,
// iat, jti and an "access" claim listing what was granted. They are signed with
// the cluster's signing keys (meta.SigningKeys: cluster state, so a token from
// one node is accepted by every node); the newest key signs, every key verifies.
//
// Verification trusts nothing in the token's header but the key id: the
// algorithm must be ES256 (not "none", not HMAC keyed with the public key, not
// RSA), and the key comes from our own key set by kid, never from a jwk, x5c or
// jku header.
const (
	tokenIssuer   = "berth"
	tokenAlg      = "ES256"
	tokenLeeway   = 30 * time.Second // clock skew allowed on exp and nbf
	maxTokenBytes = 8 << 10          // a longer Authorization value is refused unparsed

	// tokenCacheMax bounds the verified-token cache (entries of about 1 KiB).
	tokenCacheMax = 8192
)

// accessEntry is one element of a token's access claim, and one requested scope.
type accessEntry struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// tokenClaims are the claims of a Berth token.
type tokenClaims struct {
	jwt.RegisteredClaims
	Access []accessEntry `json:"access"`
}

// verifiedToken is a token whose signature and claims were checked.
type verifiedToken struct {
	subject string // principal name; "" for an anonymous token
	expires time.Time
	access  []accessEntry
}

// allows reports whether the token grants action on the resource. "*" is only
// meaningful for registry:catalog:*; repository grants are always explicit.
func (t *verifiedToken) allows(typ, name, action string) bool {
	for i := range t.access {
		a := &t.access[i]
		if a.Type == typ && a.Name == name && slices.Contains(a.Actions, action) {
			return true
		}
	}
	return false
}

// errTokenInvalid is the cause of every token refusal; the client is told only
// invalid_token, the log and the failure metric keep the cause.
var errTokenInvalid = errors.New("api: invalid token")

// keySet is the parsed signing keys of the cluster. It is safe for concurrent use.
type keySet struct {
	mu      sync.RWMutex // guards the fields below
	private map[string]*ecdsa.PrivateKey
	signID  string

	createMu sync.Mutex // serializes key creation on this node
}

// load refreshes the key set from r. Keys parsed before are reused, so a reload
// costs a scan of a few records (an unknown kid triggers one: another node may
// have added a key). Keys that are not P-256 PKCS#8 are skipped, so a key of a
// future algorithm does not break today's nodes.
func (k *keySet) load(r meta.Reader) error {
	keys, err := meta.SigningKeys(r)
	if err != nil {
		return fmt.Errorf("load signing keys: %w", err)
	}
	k.mu.RLock()
	old := k.private
	k.mu.RUnlock()
	priv := make(map[string]*ecdsa.PrivateKey, len(keys))
	var newest *meta.SigningKey
	for i := range keys {
		sk := &keys[i]
		if sk.Algorithm != "" && sk.Algorithm != tokenAlg {
			continue
		}
		ec, ok := old[sk.ID]
		if !ok {
			p, err := x509.ParsePKCS8PrivateKey(sk.Private)
			if err != nil {
				continue
			}
			if ec, ok = p.(*ecdsa.PrivateKey); !ok || ec.Curve != elliptic.P256() {
				continue
			}
		}
		priv[sk.ID] = ec
		if newest == nil || sk.Created.After(newest.Created) || (sk.Created.Equal(newest.Created) && sk.ID > newest.ID) {
			newest = sk
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.private = priv
	k.signID = ""
	if newest != nil {
		k.signID = newest.ID
	}
	return nil
}

// signer returns the newest key, or nil.
func (k *keySet) signer() (string, *ecdsa.PrivateKey) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.signID == "" {
		return "", nil
	}
	return k.signID, k.private[k.signID]
}

func (k *keySet) public(kid string) *ecdsa.PublicKey {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if p := k.private[kid]; p != nil {
		return &p.PublicKey
	}
	return nil
}

// verificationKey returns the public key with id kid, reloading the key set when
// kid is unknown.
func (s *Server) verificationKey(kid string) (*ecdsa.PublicKey, error) {
	k := s.auth.keys
	if key := k.public(kid); key != nil {
		return key, nil
	}
	if err := k.load(s.meta); err != nil {
		return nil, err
	}
	if key := k.public(kid); key != nil {
		return key, nil
	}
	if s.cluster != nil {
		// A key another node made may not have reached this one yet.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.cluster.ReadBarrier(ctx); err != nil {
			return nil, err
		}
		if err := k.load(s.meta); err != nil {
			return nil, err
		}
		if key := k.public(kid); key != nil {
			return key, nil
		}
	}
	return nil, fmt.Errorf("%w: unknown key id", errTokenInvalid)
}

// signingKey returns the newest signing key. A cluster without one gets one: it
// is generated here and proposed as cluster state, so every node verifies what
// this node signs. Concurrent creation on two nodes leaves two keys, which is
// harmless: every key verifies and the newest signs.
func (s *Server) signingKey(ctx context.Context) (string, *ecdsa.PrivateKey, error) {
	k := s.auth.keys
	if id, key := k.signer(); key != nil {
		return id, key, nil
	}
	k.createMu.Lock()
	defer k.createMu.Unlock()
	if err := k.load(s.meta); err != nil {
		return "", nil, err
	}
	if id, key := k.signer(); key != nil {
		return id, key, nil
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", nil, fmt.Errorf("generate signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return "", nil, fmt.Errorf("encode signing key: %w", err)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	cmd := &meta.PutSigningKey{ID: hex.EncodeToString(b[:]), Algorithm: tokenAlg, Private: der, Time: s.cfg.Clock()}
	if err := s.propose.Propose(ctx, cmd); err != nil {
		return "", nil, fmt.Errorf("store signing key: %w", err)
	}
	if err := k.load(s.meta); err != nil {
		return "", nil, err
	}
	id, key := k.signer()
	if key == nil {
		return "", nil, errors.New("api: no signing key after creating one")
	}
	return id, key, nil
}

// issueToken signs a token for p granting access. Its lifetime is the configured
// TokenTTL, cut short by a robot's expiry.
func (s *Server) issueToken(ctx context.Context, p *Principal, access []accessEntry) (token string, issued time.Time, ttl time.Duration, err error) {
	kid, key, err := s.signingKey(ctx)
	if err != nil {
		return "", time.Time{}, 0, err
	}
	now := s.cfg.Clock().UTC().Truncate(time.Second)
	exp := now.Add(s.cfg.TokenTTL)
	if p.Kind == RobotPrincipal && p.Robot != nil && !p.Robot.Expires.IsZero() && p.Robot.Expires.Before(exp) {
		exp = p.Robot.Expires.UTC()
	}
	var jti [16]byte
	_, _ = rand.Read(jti[:])
	if access == nil {
		access = []accessEntry{}
	}
	claims := tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    tokenIssuer,
			Subject:   p.Name,
			Audience:  jwt.ClaimStrings{s.cfg.Service},
			ExpiresAt: jwt.NewNumericDate(exp),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        hex.EncodeToString(jti[:]),
		},
		Access: access,
	}
	t := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	t.Header["kid"] = kid
	signed, err := t.SignedString(key)
	if err != nil {
		return "", time.Time{}, 0, fmt.Errorf("sign token: %w", err)
	}
	s.auth.metrics.tokensIssued.Inc()
	return signed, now, exp.Sub(now), nil
}

// verifyToken checks a Bearer token: signature by a key of our key set (by kid),
// alg ES256, iss, aud, exp and nbf (with tokenLeeway). A token verified before is
// found in a bounded cache and only its expiry is checked again, so the cost of
// ECDSA verification is paid once per token, not per request.
func (s *Server) verifyToken(raw string) (*verifiedToken, error) {
	if raw == "" || len(raw) > maxTokenBytes {
		return nil, fmt.Errorf("%w: empty or too long", errTokenInvalid)
	}
	now := s.cfg.Clock()
	if vt, ok := s.auth.tokens.get(raw, now); ok {
		return vt, nil
	}
	claims := &tokenClaims{}
	t, err := s.auth.parser.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if kid == "" || len(kid) > 128 {
			return nil, fmt.Errorf("%w: no key id", errTokenInvalid)
		}
		return s.verificationKey(kid)
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errTokenInvalid, err)
	}
	if !t.Valid || claims.ExpiresAt == nil {
		return nil, fmt.Errorf("%w: not valid", errTokenInvalid)
	}
	for _, a := range claims.Access {
		if a.Type != "repository" && a.Type != "registry" {
			return nil, fmt.Errorf("%w: unknown access type", errTokenInvalid)
		}
	}
	vt := &verifiedToken{subject: claims.Subject, expires: claims.ExpiresAt.Time, access: claims.Access}
	s.auth.tokens.put(raw, vt, now)
	return vt, nil
}

func newTokenParser(cfg Config) *jwt.Parser {
	return jwt.NewParser(
		jwt.WithValidMethods([]string{tokenAlg}),
		jwt.WithAudience(cfg.Service),
		jwt.WithIssuer(tokenIssuer),
		jwt.WithLeeway(tokenLeeway),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(cfg.Clock),
	)
}

// tokenCache remembers verified tokens until they expire. It is safe for
// concurrent use; reads take no lock (sync.Map), so it does not serialize the
// requests of many clients that share a token.
type tokenCache struct {
	m     sync.Map // raw token -> *verifiedToken
	n     atomic.Int64
	max   int64
	prune sync.Mutex // one pruning at a time
}

func (c *tokenCache) get(raw string, now time.Time) (*verifiedToken, bool) {
	v, ok := c.m.Load(raw)
	if !ok {
		return nil, false
	}
	vt := v.(*verifiedToken)
	if now.After(vt.expires.Add(tokenLeeway)) {
		if _, loaded := c.m.LoadAndDelete(raw); loaded {
			c.n.Add(-1)
		}
		return nil, false
	}
	return vt, true
}

func (c *tokenCache) put(raw string, vt *verifiedToken, now time.Time) {
	if c.n.Load() >= c.max {
		c.evict(now)
	}
	if _, loaded := c.m.LoadOrStore(raw, vt); !loaded {
		c.n.Add(1)
	}
}

// evict drops expired entries, and everything if that was not enough (a flood
// of distinct valid tokens only costs their verification again).
func (c *tokenCache) evict(now time.Time) {
	if !c.prune.TryLock() {
		return
	}
	defer c.prune.Unlock()
	drop := func(expiredOnly bool) {
		c.m.Range(func(k, v any) bool {
			if !expiredOnly || now.After(v.(*verifiedToken).expires.Add(tokenLeeway)) {
				if _, loaded := c.m.LoadAndDelete(k); loaded {
					c.n.Add(-1)
				}
			}
			return true
		})
	}
	drop(true)
	if c.n.Load() >= c.max*3/4 {
		drop(false)
	}
}

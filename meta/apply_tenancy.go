package meta

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// getJSON reads key into out, or returns absent wrapped with what.
func getJSON(r Reader, key []byte, out any, absent error, what string) error {
	v, err := r.Get(key)
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%w: %s", absent, what)
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(v, out); err != nil {
		return fmt.Errorf("meta: corrupt record %q: %w", key, err)
	}
	return nil
}

// prefixKeys returns the last components of the keys under prefix.
func prefixKeys(r Reader, prefix []byte) ([]string, error) {
	var out []string
	err := scanPrefix(r, prefix, nil, func(k, _ []byte) error {
		out = append(out, string(k[len(prefix):]))
		return nil
	})
	return out, err
}

func applyPutUser(txn Txn, c *PutUser) error {
	if !ValidName(c.Name) {
		return fmt.Errorf("%w: user name %q", ErrInvalid, c.Name)
	}
	u := User{Name: c.Name, PasswordHash: c.PasswordHash, CloudAdmin: c.CloudAdmin, Disabled: c.Disabled, Created: c.Time, Updated: c.Time}
	old, err := GetUser(txn, c.Name)
	switch {
	case err == nil && c.Create:
		return fmt.Errorf("%w: user %s", ErrExists, c.Name)
	case err == nil:
		u.Created = old.Created
		if len(u.PasswordHash) == 0 {
			u.PasswordHash = old.PasswordHash
		}
	case !errors.Is(err, ErrUserUnknown):
		return err
	case !c.Create:
		return err
	}
	return txn.Set(userKey(c.Name), encodeJSON(u))
}

func applyDeleteUser(txn Txn, c *DeleteUser) error {
	if _, err := GetUser(txn, c.Name); err != nil {
		return err
	}
	projects, err := prefixKeys(txn, userProjectPrefix(c.Name))
	if err != nil {
		return err
	}
	for _, p := range projects {
		if err := txn.Delete(memberKey(p, c.Name)); err != nil {
			return err
		}
		if err := txn.Delete(userProjectKey(c.Name, p)); err != nil {
			return err
		}
	}
	return txn.Delete(userKey(c.Name))
}

func applyPutProject(txn Txn, c *PutProject) error {
	if !ValidName(c.Name) {
		return fmt.Errorf("%w: project name %q", ErrInvalid, c.Name)
	}
	p := Project{Name: c.Name, Description: c.Description, Created: c.Time}
	old, err := GetProject(txn, c.Name)
	switch {
	case err == nil && c.Create:
		return fmt.Errorf("%w: project %s", ErrExists, c.Name)
	case err == nil:
		p.Created = old.Created
	case !errors.Is(err, ErrProjectUnknown) || !c.Create:
		return err
	}
	return txn.Set(projectKey(c.Name), encodeJSON(p))
}

func applyDeleteProject(txn Txn, c *DeleteProject) error {
	if _, err := GetProject(txn, c.Name); err != nil {
		return err
	}
	ws, err := prefixKeys(txn, projectWorkspacePrefix(c.Name))
	if err != nil {
		return err
	}
	if len(ws) > 0 {
		return fmt.Errorf("%w: project %s still owns workspaces %v; delete them first", ErrConflict, c.Name, ws)
	}
	users, err := prefixKeys(txn, memberPrefix(c.Name))
	if err != nil {
		return err
	}
	for _, u := range users {
		if err := txn.Delete(memberKey(c.Name, u)); err != nil {
			return err
		}
		if err := txn.Delete(userProjectKey(u, c.Name)); err != nil {
			return err
		}
	}
	robots, err := prefixKeys(txn, robotPrefix(c.Name))
	if err != nil {
		return err
	}
	for _, r := range robots {
		if err := txn.Delete(robotKey(c.Name, r)); err != nil {
			return err
		}
	}
	return txn.Delete(projectKey(c.Name))
}

func applySetMember(txn Txn, c *SetMember) error {
	if _, err := GetProject(txn, c.Project); err != nil {
		return err
	}
	if c.Role == "" {
		if _, err := GetMember(txn, c.Project, c.User); err != nil {
			return err
		}
		if err := txn.Delete(memberKey(c.Project, c.User)); err != nil {
			return err
		}
		return txn.Delete(userProjectKey(c.User, c.Project))
	}
	if !c.Role.Valid() {
		return fmt.Errorf("%w: role %q (use project-admin, developer or guest)", ErrInvalid, c.Role)
	}
	if _, err := GetUser(txn, c.User); err != nil {
		return err
	}
	m := Member{Role: c.Role, Added: c.Time}
	if old, err := GetMember(txn, c.Project, c.User); err == nil {
		m.Added = old.Added
	}
	if err := txn.Set(memberKey(c.Project, c.User), encodeJSON(m)); err != nil {
		return err
	}
	return txn.Set(userProjectKey(c.User, c.Project), nil)
}

func applyPutWorkspace(txn Txn, c *PutWorkspace) error {
	if !ValidWorkspaceName(c.Name) {
		return fmt.Errorf("%w: workspace name %q", ErrInvalid, c.Name)
	}
	if c.Visibility != Private && c.Visibility != Public {
		return fmt.Errorf("%w: visibility %q (use private or public)", ErrInvalid, c.Visibility)
	}
	if _, err := GetProject(txn, c.Project); err != nil {
		return err
	}
	w := Workspace{Name: c.Name, Project: c.Project, Visibility: c.Visibility, Description: c.Description, Created: c.Time}
	old, err := GetWorkspace(txn, c.Name)
	switch {
	case err == nil && c.Create:
		return fmt.Errorf("%w: workspace %s", ErrExists, c.Name)
	case err == nil && old.Project != c.Project:
		return fmt.Errorf("%w: workspace %s belongs to another project", ErrConflict, c.Name)
	case err == nil:
		w.Created = old.Created
	case !errors.Is(err, ErrWorkspaceUnknown) || !c.Create:
		return err
	}
	if inTrash, err := workspaceInTrash(txn, c.Name); err != nil {
		return err
	} else if inTrash && c.Create {
		// Its trash (listed under its name) must not pass to whoever takes
		// the name next, maybe another project.
		return fmt.Errorf("%w: workspace %s is in the trash; restore it, or wait until garbage collection reclaims it", ErrConflict, c.Name)
	}
	if err := txn.Set(workspaceKey(c.Name), encodeJSON(w)); err != nil {
		return err
	}
	return txn.Set(projectWorkspaceKey(c.Project, c.Name), nil)
}

// ValidActions are the actions a robot may be given.
var ValidActions = []string{"pull", "push", "delete"}

func applyPutRobot(txn Txn, c *PutRobot) error {
	if !ValidName(c.Name) {
		return fmt.Errorf("%w: robot name %q", ErrInvalid, c.Name)
	}
	if _, err := GetProject(txn, c.Project); err != nil {
		return err
	}
	for _, ws := range c.Workspaces {
		w, err := GetWorkspace(txn, ws)
		if err != nil {
			return err
		}
		if w.Project != c.Project {
			return fmt.Errorf("%w: workspace %s is not in project %s", ErrWorkspaceUnknown, ws, c.Project)
		}
	}
	for _, a := range c.Actions {
		if !slices.Contains(ValidActions, a) {
			return fmt.Errorf("%w: action %q (use pull, push or delete)", ErrInvalid, a)
		}
	}
	r := Robot{SecretHash: c.SecretHash, Workspaces: c.Workspaces, Actions: c.Actions, Expires: c.Expires, Disabled: c.Disabled, Created: c.Time}
	old, err := GetRobot(txn, c.Project, c.Name)
	switch {
	case err == nil && c.Create:
		return fmt.Errorf("%w: robot %s in project %s", ErrExists, c.Name, c.Project)
	case err == nil:
		r.Created = old.Created
		if len(r.SecretHash) == 0 {
			r.SecretHash = old.SecretHash
		}
	case !errors.Is(err, ErrRobotUnknown) || !c.Create:
		return err
	}
	return txn.Set(robotKey(c.Project, c.Name), encodeJSON(r))
}

func applyDeleteRobot(txn Txn, c *DeleteRobot) error {
	if _, err := GetRobot(txn, c.Project, c.Name); err != nil {
		return err
	}
	return txn.Delete(robotKey(c.Project, c.Name))
}

func applyPutSigningKey(txn Txn, c *PutSigningKey) error {
	if c.ID == "" || len(c.Private) == 0 {
		return fmt.Errorf("%w: signing key needs an id and a key", ErrInvalid)
	}
	return txn.Set(signingKeyKey(c.ID), encodeJSON(SigningKey{Algorithm: c.Algorithm, Private: c.Private, Created: c.Time}))
}

func applySetRepoDescription(txn Txn, c *SetRepoDescription) error {
	r, err := GetRepository(txn, c.Repo)
	if err != nil {
		return err
	}
	r.Description = c.Description
	return txn.Set(repoKey(c.Repo), encodeJSON(r))
}

package meta

import (
	"encoding/json"
	"fmt"
)

// GetUser returns a user, or ErrUserUnknown.
func GetUser(r Reader, name string) (*User, error) {
	u := &User{}
	if err := getJSON(r, userKey(name), u, ErrUserUnknown, name); err != nil {
		return nil, err
	}
	u.Name = name
	return u, nil
}

// HasUsers reports whether any user exists (false on a fresh cluster).
func HasUsers(r Reader) (bool, error) {
	found := false
	err := scanPrefix(r, []byte("u/"), nil, func(_, _ []byte) error {
		found = true
		return ErrStopScan
	})
	return found, err
}

// ListUsers returns every user in name order.
func ListUsers(r Reader) ([]User, error) {
	var out []User
	err := scanPrefix(r, []byte("u/"), nil, func(k, v []byte) error {
		u := User{Name: string(k[2:])}
		if err := json.Unmarshal(v, &u); err != nil {
			return fmt.Errorf("meta: corrupt user %s: %w", u.Name, err)
		}
		out = append(out, u)
		return nil
	})
	return out, err
}

// GetProject returns a project, or ErrProjectUnknown.
func GetProject(r Reader, name string) (*Project, error) {
	p := &Project{}
	if err := getJSON(r, projectKey(name), p, ErrProjectUnknown, name); err != nil {
		return nil, err
	}
	p.Name = name
	return p, nil
}

// ListProjects returns every project in name order.
func ListProjects(r Reader) ([]Project, error) {
	var out []Project
	err := scanPrefix(r, []byte("p/"), nil, func(k, v []byte) error {
		p := Project{Name: string(k[2:])}
		if err := json.Unmarshal(v, &p); err != nil {
			return fmt.Errorf("meta: corrupt project %s: %w", p.Name, err)
		}
		out = append(out, p)
		return nil
	})
	return out, err
}

// GetMember returns user's membership of project, or ErrMemberUnknown.
func GetMember(r Reader, project, user string) (*Member, error) {
	m := &Member{}
	if err := getJSON(r, memberKey(project, user), m, ErrMemberUnknown, user+" in "+project); err != nil {
		return nil, err
	}
	m.Project, m.User = project, user
	return m, nil
}

// ListMembers returns a project's members in user name order.
func ListMembers(r Reader, project string) ([]Member, error) {
	var out []Member
	prefix := memberPrefix(project)
	err := scanPrefix(r, prefix, nil, func(k, v []byte) error {
		m := Member{Project: project, User: string(k[len(prefix):])}
		if err := json.Unmarshal(v, &m); err != nil {
			return fmt.Errorf("meta: corrupt member %s: %w", m.User, err)
		}
		out = append(out, m)
		return nil
	})
	return out, err
}

// MembershipsOf returns the user's memberships (one per project), in project order.
func MembershipsOf(r Reader, user string) ([]Member, error) {
	projects, err := prefixKeys(r, userProjectPrefix(user))
	if err != nil {
		return nil, err
	}
	out := make([]Member, 0, len(projects))
	for _, p := range projects {
		m, err := GetMember(r, p, user)
		if err != nil {
			return nil, err
		}
		out = append(out, *m)
	}
	return out, nil
}

// GetWorkspace returns a workspace, or ErrWorkspaceUnknown.
func GetWorkspace(r Reader, name string) (*Workspace, error) {
	w := &Workspace{}
	if err := getJSON(r, workspaceKey(name), w, ErrWorkspaceUnknown, name); err != nil {
		return nil, err
	}
	w.Name = name
	return w, nil
}

// ListWorkspaces returns the workspaces of project, or of every project when
// project is "", in name order.
func ListWorkspaces(r Reader, project string) ([]Workspace, error) {
	var names []string
	var err error
	if project != "" {
		names, err = prefixKeys(r, projectWorkspacePrefix(project))
	} else {
		names, err = prefixKeys(r, []byte("w/"))
	}
	if err != nil {
		return nil, err
	}
	out := make([]Workspace, 0, len(names))
	for _, n := range names {
		w, err := GetWorkspace(r, n)
		if err != nil {
			return nil, err
		}
		out = append(out, *w)
	}
	return out, nil
}

// GetRobot returns a robot account, or ErrRobotUnknown.
func GetRobot(r Reader, project, name string) (*Robot, error) {
	rb := &Robot{}
	if err := getJSON(r, robotKey(project, name), rb, ErrRobotUnknown, RobotLogin(project, name)); err != nil {
		return nil, err
	}
	rb.Project, rb.Name = project, name
	return rb, nil
}

// ListRobots returns a project's robot accounts in name order.
func ListRobots(r Reader, project string) ([]Robot, error) {
	var out []Robot
	prefix := robotPrefix(project)
	err := scanPrefix(r, prefix, nil, func(k, v []byte) error {
		rb := Robot{Project: project, Name: string(k[len(prefix):])}
		if err := json.Unmarshal(v, &rb); err != nil {
			return fmt.Errorf("meta: corrupt robot %s: %w", rb.Name, err)
		}
		out = append(out, rb)
		return nil
	})
	return out, err
}

// SigningKeys returns every token signing key in id order.
func SigningKeys(r Reader) ([]SigningKey, error) {
	var out []SigningKey
	err := scanPrefix(r, []byte("k/"), nil, func(k, v []byte) error {
		sk := SigningKey{ID: string(k[2:])}
		if err := json.Unmarshal(v, &sk); err != nil {
			return fmt.Errorf("meta: corrupt signing key %s: %w", sk.ID, err)
		}
		out = append(out, sk)
		return nil
	})
	return out, err
}

package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// adminGroup is one admin command with its subcommands (berth user create ...).
type adminGroup struct {
	order []string
	cmds  map[string]func(name string, args []string, env *adminEnv) error
}

// adminGroups is the table of the grouped admin commands. It is never modified.
var adminGroups = map[string]adminGroup{
	"user": {order: []string{"create", "list", "delete", "passwd", "set-admin"}, cmds: map[string]func(string, []string, *adminEnv) error{
		"create": cmdUserCreate, "list": cmdUserList, "delete": cmdUserDelete, "passwd": cmdUserPasswd, "set-admin": cmdUserSetAdmin,
	}},
	"project": {order: []string{"create", "list", "delete"}, cmds: map[string]func(string, []string, *adminEnv) error{
		"create": cmdProjectCreate, "list": cmdProjectList, "delete": cmdProjectDelete,
	}},
	"member": {order: []string{"add", "remove", "list"}, cmds: map[string]func(string, []string, *adminEnv) error{
		"add": cmdMemberAdd, "remove": cmdMemberRemove, "list": cmdMemberList,
	}},
	"workspace": {order: []string{"create", "list", "set", "delete"}, cmds: map[string]func(string, []string, *adminEnv) error{
		"create": cmdWorkspaceCreate, "list": cmdWorkspaceList, "set": cmdWorkspaceSet, "delete": cmdWorkspaceDelete,
	}},
	"robot": {order: []string{"create", "list", "delete"}, cmds: map[string]func(string, []string, *adminEnv) error{
		"create": cmdRobotCreate, "list": cmdRobotList, "delete": cmdRobotDelete,
	}},
}

// Prompts, only on a terminal.

func terminalStdin(env *adminEnv) (*os.File, bool) {
	f, ok := env.stdin.(*os.File)
	return f, ok && isTerminal(f)
}

func promptPassword(env *adminEnv, prompt string) (string, error) {
	f, ok := terminalStdin(env)
	if !ok {
		return "", errors.New("standard input is not a terminal")
	}
	fmt.Fprint(env.stderr, prompt)
	p, err := readHidden(f)
	fmt.Fprintln(env.stderr)
	return p, err
}

func promptLine(env *adminEnv, prompt string) (string, error) {
	f, ok := terminalStdin(env)
	if !ok {
		return "", errors.New("standard input is not a terminal")
	}
	fmt.Fprint(env.stderr, prompt)
	return readLine(f)
}

// Output helpers.

func table(w io.Writer, header string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func day(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04")
}

// esc escapes one path segment.
func esc(s string) string { return url.PathEscape(s) }

// needProject checks the --project flag.
func needProject(p string) error {
	if p == "" {
		return usagef("--project is required")
	}
	return nil
}

// randomPassword returns 144 random bits, URL-safe.
func randomPassword() string {
	var b [18]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// newPassword reads a new password from --new-password, --new-password-stdin or
// a terminal prompt (twice); "" when none was given and there is no terminal.
func newPassword(flagValue string, fromStdin bool, c *commonFlags, env *adminEnv) (string, error) {
	switch {
	case fromStdin && c.passwordStdin:
		return "", usagef("--password-stdin and --new-password-stdin cannot both read standard input")
	case fromStdin && flagValue != "":
		return "", usagef("--new-password and --new-password-stdin are exclusive")
	case fromStdin:
		return readLine(env.stdin)
	case flagValue != "":
		return flagValue, nil
	}
	if _, ok := terminalStdin(env); !ok {
		return "", nil
	}
	p1, err := promptPassword(env, "New password: ")
	if err != nil {
		return "", err
	}
	p2, err := promptPassword(env, "Repeat the new password: ")
	if err != nil {
		return "", err
	}
	if p1 != p2 {
		return "", usagef("the passwords differ")
	}
	return p1, nil
}

// Users.

type userInfo struct {
	Name        string    `json:"name"`
	CloudAdmin  bool      `json:"cloudAdmin"`
	Disabled    bool      `json:"disabled"`
	Created     time.Time `json:"created"`
	Memberships []struct {
		Project string `json:"project"`
		Role    string `json:"role"`
	} `json:"memberships"`
}

func cmdUserCreate(name string, args []string, env *adminEnv) error {
	var c commonFlags
	fs := newFlagSet(name, "user create NAME [--cloud-admin] [--new-password PASS | --new-password-stdin]\n\n"+
		"Creates a user. Without a password (and no terminal to ask on) one is generated and printed once.", env, &c)
	admin := fs.Bool("cloud-admin", false, "make the user a cloud admin")
	np := fs.String("new-password", "", "the new user's password")
	npStdin := fs.Bool("new-password-stdin", false, "read the new user's password from standard input")
	pos, err := parseCommand(fs, args, 1, 1)
	if err != nil {
		return err
	}
	pw, err := newPassword(*np, *npStdin, &c, env)
	if err != nil {
		return err
	}
	generated := pw == ""
	if generated {
		pw = randomPassword()
	}
	cl, err := connect(&c, env)
	if err != nil {
		return err
	}
	var u userInfo
	raw, err := cl.do(http.MethodPost, "/api/v1/users", map[string]any{"name": pos[0], "password": pw, "cloudAdmin": *admin}, &u)
	if err != nil {
		return err
	}
	if c.json {
		if generated {
			var m map[string]any
			if err := json.Unmarshal(raw, &m); err != nil {
				return err
			}
			m["password"] = pw
			if raw, err = json.Marshal(m); err != nil {
				return err
			}
		}
		return printJSON(env.stdout, raw)
	}
	fmt.Fprintf(env.stdout, "Created user %s", u.Name)
	if u.CloudAdmin {
		fmt.Fprint(env.stdout, " (cloud admin)")
	}
	fmt.Fprintln(env.stdout)
	if generated {
		fmt.Fprintf(env.stdout, "Password (shown only now): %s\n", pw)
	}
	return nil
}

func cmdUserList(name string, args []string, env *adminEnv) error {
	var c commonFlags
	fs := newFlagSet(name, "user list\n\nLists every user (cloud admins only).", env, &c)
	if _, err := parseCommand(fs, args, 0, 0); err != nil {
		return err
	}
	cl, err := connect(&c, env)
	if err != nil {
		return err
	}
	var out struct{ Items []userInfo }
	raw, err := cl.do(http.MethodGet, "/api/v1/users", nil, &out)
	if err != nil || c.json {
		return jsonOr(env, raw, err)
	}
	var rows [][]string
	for _, u := range out.Items {
		var ps []string
		for _, m := range u.Memberships {
			ps = append(ps, m.Project+":"+m.Role)
		}
		rows = append(rows, []string{u.Name, yesNo(u.CloudAdmin), yesNo(u.Disabled), orDash(strings.Join(ps, ",")), day(u.Created)})
	}
	return table(env.stdout, "NAME\tCLOUD ADMIN\tDISABLED\tPROJECTS\tCREATED", rows)
}

// jsonOr prints raw for --json, or returns err.
func jsonOr(env *adminEnv, raw []byte, err error) error {
	if err != nil {
		return err
	}
	return printJSON(env.stdout, raw)
}

// done prints a confirmation, or nothing with --json (a delete answers no body).
func done(env *adminEnv, c *commonFlags, format string, args ...any) error {
	if !c.json {
		fmt.Fprintf(env.stdout, format+"\n", args...)
	}
	return nil
}

func cmdUserDelete(name string, args []string, env *adminEnv) error {
	var c commonFlags
	fs := newFlagSet(name, "user delete NAME\n\nDeletes a user and their memberships (cloud admins only).", env, &c)
	pos, err := parseCommand(fs, args, 1, 1)
	if err != nil {
		return err
	}
	cl, err := connect(&c, env)
	if err != nil {
		return err
	}
	if _, err := cl.do(http.MethodDelete, "/api/v1/users/"+esc(pos[0]), nil, nil); err != nil {
		return err
	}
	return done(env, &c, "Deleted user %s", pos[0])
}

func cmdUserPasswd(name string, args []string, env *adminEnv) error {
	var c commonFlags
	fs := newFlagSet(name, "user passwd NAME [--new-password PASS | --new-password-stdin] [--old-password PASS]\n\n"+
		"Sets a user's password. Cloud admins set anyone's; users set their own, with the old\n"+
		"password (by default the one they log in with).", env, &c)
	np := fs.String("new-password", "", "the new password")
	npStdin := fs.Bool("new-password-stdin", false, "read the new password from standard input")
	old := fs.String("old-password", "", "the current password (your own account only; default: the login password)")
	pos, err := parseCommand(fs, args, 1, 1)
	if err != nil {
		return err
	}
	pw, err := newPassword(*np, *npStdin, &c, env)
	if err != nil {
		return err
	}
	if pw == "" {
		return usagef("give the new password with --new-password or --new-password-stdin")
	}
	cl, err := connect(&c, env)
	if err != nil {
		return err
	}
	body := map[string]any{"password": pw}
	if pos[0] == cl.user {
		o := *old
		if o == "" {
			o = cl.pass
		}
		body["oldPassword"] = o
	}
	raw, err := cl.do(http.MethodPatch, "/api/v1/users/"+esc(pos[0]), body, nil)
	if err != nil || c.json {
		return jsonOr(env, raw, err)
	}
	fmt.Fprintf(env.stdout, "Changed the password of %s\n", pos[0])
	if pos[0] == cl.user {
		if cf, err := loadCredentials(env); err == nil {
			if s, ok := cf.Servers[cl.server]; ok && s.User == cl.user {
				fmt.Fprintln(env.stdout, "Run berth login again to save the new password.")
			}
		}
	}
	return nil
}

func cmdUserSetAdmin(name string, args []string, env *adminEnv) error {
	var c commonFlags
	fs := newFlagSet(name, "user set-admin NAME [true|false]\n\nGrants (default) or removes the cloud admin role (cloud admins only; not on yourself).", env, &c)
	pos, err := parseCommand(fs, args, 1, 2)
	if err != nil {
		return err
	}
	on := true
	if len(pos) == 2 {
		if on, err = strconv.ParseBool(pos[1]); err != nil {
			return usagef("%q is not true or false", pos[1])
		}
	}
	cl, err := connect(&c, env)
	if err != nil {
		return err
	}
	raw, err := cl.do(http.MethodPatch, "/api/v1/users/"+esc(pos[0]), map[string]any{"cloudAdmin": on}, nil)
	if err != nil || c.json {
		return jsonOr(env, raw, err)
	}
	if on {
		fmt.Fprintf(env.stdout, "%s is a cloud admin\n", pos[0])
	} else {
		fmt.Fprintf(env.stdout, "%s is no longer a cloud admin\n", pos[0])
	}
	return nil
}

// Projects.

func cmdProjectCreate(name string, args []string, env *adminEnv) error {
	var c commonFlags
	fs := newFlagSet(name, "project create NAME [--description TEXT]\n\nCreates a project (cloud admins only).", env, &c)
	desc := fs.String("description", "", "description")
	pos, err := parseCommand(fs, args, 1, 1)
	if err != nil {
		return err
	}
	cl, err := connect(&c, env)
	if err != nil {
		return err
	}
	raw, err := cl.do(http.MethodPost, "/api/v1/projects", map[string]any{"name": pos[0], "description": *desc}, nil)
	if err != nil || c.json {
		return jsonOr(env, raw, err)
	}
	fmt.Fprintf(env.stdout, "Created project %s\n", pos[0])
	return nil
}

func cmdProjectList(name string, args []string, env *adminEnv) error {
	var c commonFlags
	fs := newFlagSet(name, "project list\n\nLists your projects (every project for a cloud admin).", env, &c)
	if _, err := parseCommand(fs, args, 0, 0); err != nil {
		return err
	}
	cl, err := connect(&c, env)
	if err != nil {
		return err
	}
	var out struct {
		Items []struct {
			Name, Description, Role string
			Workspaces              int
		}
	}
	raw, err := cl.do(http.MethodGet, "/api/v1/projects", nil, &out)
	if err != nil || c.json {
		return jsonOr(env, raw, err)
	}
	var rows [][]string
	for _, p := range out.Items {
		rows = append(rows, []string{p.Name, orDash(p.Role), strconv.Itoa(p.Workspaces), orDash(p.Description)})
	}
	return table(env.stdout, "NAME\tYOUR ROLE\tWORKSPACES\tDESCRIPTION", rows)
}

func cmdProjectDelete(name string, args []string, env *adminEnv) error {
	var c commonFlags
	fs := newFlagSet(name, "project delete NAME\n\nDeletes a project without workspaces, with its members and robots (cloud admins only).", env, &c)
	pos, err := parseCommand(fs, args, 1, 1)
	if err != nil {
		return err
	}
	cl, err := connect(&c, env)
	if err != nil {
		return err
	}
	if _, err := cl.do(http.MethodDelete, "/api/v1/projects/"+esc(pos[0]), nil, nil); err != nil {
		return err
	}
	return done(env, &c, "Deleted project %s", pos[0])
}

// Members.

func cmdMemberAdd(name string, args []string, env *adminEnv) error {
	var c commonFlags
	fs := newFlagSet(name, "member add USER --project NAME [--role project-admin|developer|guest]\n\n"+
		"Adds a member to a project or changes their role (project admins and cloud admins).", env, &c)
	project := fs.String("project", "", "the project (required)")
	role := fs.String("role", "developer", "project-admin, developer or guest")
	pos, err := parseCommand(fs, args, 1, 1)
	if err != nil {
		return err
	}
	if err := needProject(*project); err != nil {
		return err
	}
	cl, err := connect(&c, env)
	if err != nil {
		return err
	}
	raw, err := cl.do(http.MethodPut, "/api/v1/projects/"+esc(*project)+"/members/"+esc(pos[0]), map[string]any{"role": *role}, nil)
	if err != nil || c.json {
		return jsonOr(env, raw, err)
	}
	fmt.Fprintf(env.stdout, "%s is %s of project %s\n", pos[0], *role, *project)
	return nil
}

func cmdMemberRemove(name string, args []string, env *adminEnv) error {
	var c commonFlags
	fs := newFlagSet(name, "member remove USER --project NAME\n\nRemoves a member from a project (project admins and cloud admins).", env, &c)
	project := fs.String("project", "", "the project (required)")
	pos, err := parseCommand(fs, args, 1, 1)
	if err != nil {
		return err
	}
	if err := needProject(*project); err != nil {
		return err
	}
	cl, err := connect(&c, env)
	if err != nil {
		return err
	}
	if _, err := cl.do(http.MethodDelete, "/api/v1/projects/"+esc(*project)+"/members/"+esc(pos[0]), nil, nil); err != nil {
		return err
	}
	return done(env, &c, "Removed %s from project %s", pos[0], *project)
}

func cmdMemberList(name string, args []string, env *adminEnv) error {
	var c commonFlags
	fs := newFlagSet(name, "member list --project NAME\n\nLists a project's members.", env, &c)
	project := fs.String("project", "", "the project (required)")
	if _, err := parseCommand(fs, args, 0, 0); err != nil {
		return err
	}
	if err := needProject(*project); err != nil {
		return err
	}
	cl, err := connect(&c, env)
	if err != nil {
		return err
	}
	var out struct {
		Items []struct {
			User, Role string
			Added      time.Time
		}
	}
	raw, err := cl.do(http.MethodGet, "/api/v1/projects/"+esc(*project)+"/members", nil, &out)
	if err != nil || c.json {
		return jsonOr(env, raw, err)
	}
	var rows [][]string
	for _, m := range out.Items {
		rows = append(rows, []string{m.User, m.Role, day(m.Added)})
	}
	return table(env.stdout, "USER\tROLE\tADDED", rows)
}

// Workspaces.

func cmdWorkspaceCreate(name string, args []string, env *adminEnv) error {
	var c commonFlags
	fs := newFlagSet(name, "workspace create NAME --project NAME [--visibility private|public] [--description TEXT]\n\n"+
		"Creates a workspace in a project (project admins and cloud admins). Its repositories are NAME/<path>.", env, &c)
	project := fs.String("project", "", "the owning project (required)")
	vis := fs.String("visibility", "private", "private (the project's members only) or public (every project's members may pull)")
	desc := fs.String("description", "", "description")
	pos, err := parseCommand(fs, args, 1, 1)
	if err != nil {
		return err
	}
	if err := needProject(*project); err != nil {
		return err
	}
	cl, err := connect(&c, env)
	if err != nil {
		return err
	}
	raw, err := cl.do(http.MethodPost, "/api/v1/projects/"+esc(*project)+"/workspaces",
		map[string]any{"name": pos[0], "visibility": *vis, "description": *desc}, nil)
	if err != nil || c.json {
		return jsonOr(env, raw, err)
	}
	fmt.Fprintf(env.stdout, "Created %s workspace %s in project %s\n", *vis, pos[0], *project)
	return nil
}

type workspaceInfo struct {
	Name, Project, Visibility, Description string
	Repositories                           int
	Own                                    bool
}

func cmdWorkspaceList(name string, args []string, env *adminEnv) error {
	var c commonFlags
	fs := newFlagSet(name, "workspace list [--scope own|shared|all] [--project NAME]\n\n"+
		"Lists workspaces: own (your projects'), shared (other projects' public ones) or all.", env, &c)
	scope := fs.String("scope", "all", "own, shared or all")
	project := fs.String("project", "", "only this project's workspaces")
	if _, err := parseCommand(fs, args, 0, 0); err != nil {
		return err
	}
	cl, err := connect(&c, env)
	if err != nil {
		return err
	}
	q := url.Values{"scope": {*scope}}
	if *project != "" {
		q.Set("project", *project)
	}
	var out struct{ Items []workspaceInfo }
	raw, err := cl.do(http.MethodGet, "/api/v1/workspaces?"+q.Encode(), nil, &out)
	if err != nil || c.json {
		return jsonOr(env, raw, err)
	}
	var rows [][]string
	for _, w := range out.Items {
		kind := "own"
		switch {
		case !w.Own && w.Visibility == "public":
			kind = "shared"
		case !w.Own:
			kind = "cloud-admin" // a private workspace of a project the admin is no member of
		}
		rows = append(rows, []string{w.Name, w.Project, w.Visibility, kind, strconv.Itoa(w.Repositories), orDash(w.Description)})
	}
	return table(env.stdout, "NAME\tPROJECT\tVISIBILITY\tACCESS\tREPOSITORIES\tDESCRIPTION", rows)
}

func cmdWorkspaceSet(name string, args []string, env *adminEnv) error {
	var c commonFlags
	fs := newFlagSet(name, "workspace set NAME [--visibility private|public] [--description TEXT]\n\n"+
		"Changes a workspace: the visibility (project admins), the description (also developers).", env, &c)
	vis := fs.String("visibility", "", "private or public")
	desc := fs.String("description", "", "description")
	pos, err := parseCommand(fs, args, 1, 1)
	if err != nil {
		return err
	}
	body := map[string]any{}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "visibility":
			body["visibility"] = *vis
		case "description":
			body["description"] = *desc
		}
	})
	if len(body) == 0 {
		return usagef("nothing to change: give --visibility or --description")
	}
	cl, err := connect(&c, env)
	if err != nil {
		return err
	}
	var w workspaceInfo
	raw, err := cl.do(http.MethodPatch, "/api/v1/workspaces/"+esc(pos[0]), body, &w)
	if err != nil || c.json {
		return jsonOr(env, raw, err)
	}
	fmt.Fprintf(env.stdout, "Workspace %s: %s, %q\n", w.Name, w.Visibility, w.Description)
	return nil
}

func cmdWorkspaceDelete(name string, args []string, env *adminEnv) error {
	var c commonFlags
	fs := newFlagSet(name, "workspace delete NAME\n\nDeletes a workspace that holds no repository (project admins and cloud admins).", env, &c)
	pos, err := parseCommand(fs, args, 1, 1)
	if err != nil {
		return err
	}
	cl, err := connect(&c, env)
	if err != nil {
		return err
	}
	if _, err := cl.do(http.MethodDelete, "/api/v1/workspaces/"+esc(pos[0]), nil, nil); err != nil {
		return err
	}
	return done(env, &c, "Deleted workspace %s", pos[0])
}

// Robots.

// listFlag is a repeatable flag whose values may also be comma-separated.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

type robotInfo struct {
	Name, Project, Login, Secret string
	Workspaces, Actions          []string
	Expires                      *time.Time
	Disabled                     bool
}

func (r *robotInfo) expires() string {
	if r.Expires == nil {
		return "never"
	}
	return day(*r.Expires)
}

func cmdRobotCreate(name string, args []string, env *adminEnv) error {
	var c commonFlags
	fs := newFlagSet(name, "robot create NAME --project NAME --workspace WS[,WS...] [--actions pull,push] [--expires-in-days N]\n\n"+
		"Creates a robot account for CI (project admins and cloud admins) and prints its secret,\n"+
		"which is shown only this once. Log in with the printed robot$<project>+<name> user name.", env, &c)
	project := fs.String("project", "", "the project (required)")
	var wss, actions listFlag
	fs.Var(&wss, "workspace", "a workspace of the project the robot may use (repeat, or separate with commas)")
	fs.Var(&actions, "actions", "what it may do: pull, push, delete (default pull,push)")
	days := fs.Int("expires-in-days", 0, "days until the robot expires; 0: never")
	pos, err := parseCommand(fs, args, 1, 1)
	if err != nil {
		return err
	}
	if err := needProject(*project); err != nil {
		return err
	}
	if len(wss) == 0 {
		return usagef("give at least one --workspace")
	}
	if len(actions) == 0 {
		actions = listFlag{"pull", "push"}
	}
	cl, err := connect(&c, env)
	if err != nil {
		return err
	}
	var rb robotInfo
	raw, err := cl.do(http.MethodPost, "/api/v1/projects/"+esc(*project)+"/robots", map[string]any{
		"name": pos[0], "workspaces": []string(wss), "actions": []string(actions), "expiresInDays": *days,
	}, &rb)
	if err != nil || c.json {
		return jsonOr(env, raw, err)
	}
	host := strings.TrimPrefix(strings.TrimPrefix(cl.server, "https://"), "http://")
	fmt.Fprintf(env.stdout, "Created robot account %s\n", rb.Login)
	fmt.Fprintf(env.stdout, "Workspaces: %s  Actions: %s  Expires: %s\n", strings.Join(rb.Workspaces, ","), strings.Join(rb.Actions, ","), rb.expires())
	fmt.Fprintf(env.stdout, "Secret (shown only now, store it safely): %s\n", rb.Secret)
	fmt.Fprintf(env.stdout, "Use it with: echo \"$SECRET\" | docker login %s -u '%s' --password-stdin\n", host, rb.Login)
	return nil
}

func cmdRobotList(name string, args []string, env *adminEnv) error {
	var c commonFlags
	fs := newFlagSet(name, "robot list --project NAME\n\nLists a project's robot accounts (project admins and cloud admins).", env, &c)
	project := fs.String("project", "", "the project (required)")
	if _, err := parseCommand(fs, args, 0, 0); err != nil {
		return err
	}
	if err := needProject(*project); err != nil {
		return err
	}
	cl, err := connect(&c, env)
	if err != nil {
		return err
	}
	var out struct{ Items []robotInfo }
	raw, err := cl.do(http.MethodGet, "/api/v1/projects/"+esc(*project)+"/robots", nil, &out)
	if err != nil || c.json {
		return jsonOr(env, raw, err)
	}
	var rows [][]string
	for _, r := range out.Items {
		rows = append(rows, []string{r.Name, r.Login, strings.Join(r.Workspaces, ","), strings.Join(r.Actions, ","), r.expires(), yesNo(r.Disabled)})
	}
	return table(env.stdout, "NAME\tLOGIN\tWORKSPACES\tACTIONS\tEXPIRES\tDISABLED", rows)
}

func cmdRobotDelete(name string, args []string, env *adminEnv) error {
	var c commonFlags
	fs := newFlagSet(name, "robot delete NAME --project NAME\n\nRevokes a robot account (project admins and cloud admins).", env, &c)
	project := fs.String("project", "", "the project (required)")
	pos, err := parseCommand(fs, args, 1, 1)
	if err != nil {
		return err
	}
	if err := needProject(*project); err != nil {
		return err
	}
	cl, err := connect(&c, env)
	if err != nil {
		return err
	}
	if _, err := cl.do(http.MethodDelete, "/api/v1/projects/"+esc(*project)+"/robots/"+esc(pos[0]), nil, nil); err != nil {
		return err
	}
	return done(env, &c, "Revoked robot %s", pos[0])
}

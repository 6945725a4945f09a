package main

// The admin subcommands (login, logout, user, project, member, workspace, robot)
// are clients of a running node's management API (/api/v1/). Each takes
// --server (default $BERTH_SERVER, else http://127.0.0.1:5000) and credentials
// from --user/--password (or --password-stdin), else $BERTH_USER/$BERTH_PASSWORD,
// else what `berth login` saved for that server. The credentials are traded for
// a token at the server's token endpoint (the realm of its challenge), and the
// token is sent on every API call, as docker does.
//
// Exit codes: 0 done, 1 the server refused (its message is printed) or could not
// be reached, 2 a usage error.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

const defaultServer = "http://127.0.0.1:5000"

const adminUsage = `admin commands (against a running node; berth <command> -h for flags):
  login       check credentials and save them for a server
  logout      forget the saved credentials of a server
  user        create | list | delete | passwd | set-admin
  project     create | list | delete
  member      add | remove | list
  workspace   create | list | set | delete
  robot       create | list | delete

common flags: --server URL (default $BERTH_SERVER, else ` + defaultServer + `),
  --user NAME --password PASS | --password-stdin (else $BERTH_USER, $BERTH_PASSWORD,
  else the credentials saved by berth login), --json (machine-readable output)
exit codes: 0 done, 1 refused by the server (or unreachable), 2 usage error
`

// usageError is a mistake in the command line: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// serverError is the server's refusal: exit code 1, with its message.
type serverError struct {
	Status  int
	Code    string
	Message string
}

func (e *serverError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("server answered %d: %s", e.Status, e.Message)
	}
	return fmt.Sprintf("%s (%s)", e.Message, e.Code)
}

// adminEnv is what a subcommand runs with.
type adminEnv struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
}

// commonFlags are the flags of every admin subcommand.
type commonFlags struct {
	server        string
	user          string
	password      string
	passwordStdin bool
	json          bool
}

func (c *commonFlags) register(fs *flag.FlagSet, env *adminEnv) {
	def := env.getenv("BERTH_SERVER")
	if def == "" {
		def = defaultServer
	}
	fs.StringVar(&c.server, "server", def, "registry URL")
	fs.StringVar(&c.user, "user", "", "user name (else $BERTH_USER, else the saved login)")
	fs.StringVar(&c.password, "password", "", "password (else $BERTH_PASSWORD, else the saved login); prefer --password-stdin")
	fs.BoolVar(&c.passwordStdin, "password-stdin", false, "read the password from the first line of standard input")
	fs.BoolVar(&c.json, "json", false, "print the server's JSON instead of a table")
}

// parseArgs parses flags and positional arguments in any order (berth user create
// alice --cloud-admin as well as berth user create --cloud-admin alice).
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// runAdmin runs one admin subcommand and returns its exit code.
func runAdmin(cmd string, args []string, env *adminEnv) int {
	if env.getenv == nil {
		env.getenv = os.Getenv
	}
	var err error
	switch cmd {
	case "login":
		err = cmdLogin(args, env)
	case "logout":
		err = cmdLogout(args, env)
	default:
		group, ok := adminGroups[cmd]
		if !ok {
			err = usagef("unknown command %q", cmd)
			break
		}
		if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
			fmt.Fprintf(env.stderr, "usage: berth %s <%s> [flags]\n", cmd, strings.Join(group.order, "|"))
			if len(args) == 0 {
				return 2
			}
			return 0
		}
		run, ok := group.cmds[args[0]]
		if !ok {
			err = usagef("unknown command %q for berth %s (use %s)", args[0], cmd, strings.Join(group.order, ", "))
			break
		}
		err = run(cmd+" "+args[0], args[1:], env)
	}
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(env.stderr, "berth %s: %v\n", cmd, err)
		return 2
	case errors.Is(err, errFlagParse):
		return 2 // the flag package printed the error and the usage
	}
	fmt.Fprintf(env.stderr, "berth %s: %v\n", cmd, err)
	return 1
}

var errFlagParse = errors.New("flag parse error")

// newFlagSet returns a flag set for "berth <name>" with the common flags.
func newFlagSet(name, usage string, env *adminEnv, c *commonFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("berth "+name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.stderr, "usage: berth %s\n\nflags:\n", usage)
		fs.PrintDefaults()
	}
	c.register(fs, env)
	return fs
}

// parseCommand parses the command line, expecting lo to hi positional
// arguments (named in the usage).
func parseCommand(fs *flag.FlagSet, args []string, lo, hi int) ([]string, error) {
	pos, err := parseArgs(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return nil, err
	}
	if err != nil {
		return nil, errFlagParse
	}
	if len(pos) < lo || len(pos) > hi {
		fs.Usage()
		return nil, errFlagParse
	}
	return pos, nil
}

// normalizeServer turns "host:port" into a URL (http for loopback hosts, https
// otherwise, as docker assumes) and drops a trailing slash.
func normalizeServer(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", usagef("--server is empty")
	}
	if !strings.Contains(s, "://") {
		host := strings.TrimRight(s, "/")
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		scheme := "https://"
		if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
			scheme = "http://"
		}
		s = scheme + s
	}
	s = strings.TrimRight(s, "/")
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return "", usagef("--server %q is not an http(s) URL", s)
	}
	return s, nil
}

// readLine reads one line of r without its line ending.
func readLine(r io.Reader) (string, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", fmt.Errorf("read standard input: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// credentials resolves the caller's user and password for server: flags, then
// the environment, then the saved login, then (on a terminal) a prompt.
func credentials(c *commonFlags, server string, env *adminEnv) (string, string, error) {
	user, pass := c.user, c.password
	if c.passwordStdin {
		if pass != "" {
			return "", "", usagef("--password and --password-stdin are exclusive")
		}
		p, err := readLine(env.stdin)
		if err != nil {
			return "", "", err
		}
		pass = p
	}
	if user == "" {
		user = env.getenv("BERTH_USER")
	}
	if pass == "" && (c.user == "" || c.user == env.getenv("BERTH_USER")) {
		pass = env.getenv("BERTH_PASSWORD")
	}
	if user == "" || pass == "" {
		saved, err := loadCredentials(env)
		if err != nil {
			return "", "", err
		}
		if s, ok := saved.Servers[server]; ok && (user == "" || user == s.User) {
			user, pass = s.User, s.Password
		}
	}
	if user == "" {
		return "", "", usagef("no credentials for %s: give --user and --password, set BERTH_USER and BERTH_PASSWORD, or run berth login", server)
	}
	if pass == "" {
		p, err := promptPassword(env, "Password for "+user+": ")
		if err != nil {
			return "", "", usagef("no password for %s: give --password or --password-stdin, set BERTH_PASSWORD, or run berth login", user)
		}
		pass = p
	}
	return user, pass, nil
}

// Saved logins.

type savedLogin struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

type credentialsFile struct {
	Servers map[string]savedLogin `json:"servers"`
}

// credentialsPath is $XDG_CONFIG_HOME/berth/credentials.json, or
// ~/.config/berth/credentials.json.
func credentialsPath(env *adminEnv) (string, error) {
	dir := env.getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home := env.getenv("HOME")
		if home == "" {
			h, err := os.UserHomeDir()
			if err != nil {
				return "", fmt.Errorf("credentials file: %w", err)
			}
			home = h
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "berth", "credentials.json"), nil
}

func loadCredentials(env *adminEnv) (*credentialsFile, error) {
	path, err := credentialsPath(env)
	if err != nil {
		return nil, err
	}
	out := &credentialsFile{Servers: map[string]savedLogin{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, out); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if out.Servers == nil {
		out.Servers = map[string]savedLogin{}
	}
	return out, nil
}

// saveCredentials writes the file with mode 0600 (its directory 0700), through a
// temporary file and a rename so that a crash leaves the old or the new file.
func saveCredentials(env *adminEnv, cf *credentialsFile) (string, error) {
	path, err := credentialsPath(env)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	b, err := json.MarshalIndent(cf, "", "  ")
	if err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".credentials-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return "", err
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	return path, os.Rename(tmp.Name(), path)
}

// The API client.

// apiClient calls one server's management API with a token.
type apiClient struct {
	server string
	user   string
	pass   string
	token  string
	http   *http.Client
}

// connect resolves the server and credentials of the common flags and logs in.
func connect(c *commonFlags, env *adminEnv) (*apiClient, error) {
	server, err := normalizeServer(c.server)
	if err != nil {
		return nil, err
	}
	user, pass, err := credentials(c, server, env)
	if err != nil {
		return nil, err
	}
	cl := &apiClient{server: server, user: user, pass: pass, http: &http.Client{Timeout: 60 * time.Second}}
	return cl, cl.login()
}

// login trades the credentials for a token. The token endpoint and service name
// come from the challenge of an unauthenticated API call, so a server with
// another service name or an external URL works too; without a challenge they
// default to <server>/auth/token and "berth".
func (c *apiClient) login() error {
	realm, service := c.server+"/auth/token", "berth"
	resp, err := c.http.Get(c.server + "/api/v1/me")
	if err != nil {
		return fmt.Errorf("reach %s: %w", c.server, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	if r, s, ok := parseChallenge(resp.Header.Get("WWW-Authenticate")); ok {
		realm = r
		if s != "" {
			service = s
		}
	}
	u, err := url.Parse(realm)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("the server's token realm %q is not an http(s) URL", realm)
	}
	q := u.Query()
	q.Set("service", service)
	u.RawQuery = q.Encode()
	req, err := http.NewRequest(http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth(c.user, c.pass)
	resp, err = c.http.Do(req)
	if err != nil {
		return fmt.Errorf("reach %s: %w", u.Host, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		if ae := decodeAPIError(resp.StatusCode, body); ae != nil {
			return fmt.Errorf("login as %s: %w", c.user, ae)
		}
		return fmt.Errorf("login as %s: %w", c.user, &serverError{Status: resp.StatusCode, Message: http.StatusText(resp.StatusCode)})
	}
	var tok struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(body, &tok); err != nil {
		return fmt.Errorf("login as %s: token answer: %w", c.user, err)
	}
	c.token = tok.Token
	if c.token == "" {
		c.token = tok.AccessToken
	}
	if c.token == "" {
		return fmt.Errorf("login as %s: the token endpoint sent no token", c.user)
	}
	return nil
}

// parseChallenge reads realm and service of a Bearer challenge.
func parseChallenge(h string) (realm, service string, ok bool) {
	scheme, params, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", "", false
	}
	for params != "" {
		params = strings.TrimLeft(params, " ,")
		key, rest, found := strings.Cut(params, "=")
		if !found {
			break
		}
		var val string
		if strings.HasPrefix(rest, `"`) {
			end := strings.IndexByte(rest[1:], '"')
			if end < 0 {
				break
			}
			val, params = rest[1:1+end], rest[2+end:]
		} else {
			val, params, _ = strings.Cut(rest, ",")
		}
		switch strings.ToLower(strings.TrimSpace(key)) {
		case "realm":
			realm = val
		case "service":
			service = val
		}
	}
	return realm, service, realm != ""
}

func decodeAPIError(status int, body []byte) *serverError {
	var e struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if json.Unmarshal(body, &e) != nil || len(e.Errors) == 0 {
		return nil
	}
	return &serverError{Status: status, Code: e.Errors[0].Code, Message: e.Errors[0].Message}
}

// do calls the API: body (if not nil) is sent as JSON; the answer is decoded into
// out (if not nil) and also returned raw for --json.
func (c *apiClient) do(method, path string, body, out any) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.server+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reach %s: %w", c.server, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode >= 300 {
		if ae := decodeAPIError(resp.StatusCode, raw); ae != nil {
			return nil, ae
		}
		return nil, &serverError{Status: resp.StatusCode, Message: strings.TrimSpace(http.StatusText(resp.StatusCode))}
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return nil, fmt.Errorf("decode answer of %s %s: %w", method, path, err)
		}
	}
	return raw, nil
}

// printJSON writes raw JSON indented.
func printJSON(w io.Writer, raw []byte) error {
	if len(bytes.TrimSpace(raw)) == 0 {
		raw = []byte("{}")
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return err
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

// login and logout.

func cmdLogin(args []string, env *adminEnv) error {
	var c commonFlags
	fs := newFlagSet("login", "login [--server URL] [--user NAME] [--password PASS | --password-stdin]\n\n"+
		"Checks the credentials and saves them for the server in\n"+
		"$XDG_CONFIG_HOME/berth/credentials.json (or ~/.config/berth/credentials.json), mode 0600.\n"+
		"The password is stored as is, as docker login stores it in config.json without a\n"+
		"credential helper: protect that file, or use BERTH_USER and BERTH_PASSWORD instead.", env, &c)
	if _, err := parseCommand(fs, args, 0, 0); err != nil {
		return err
	}
	server, err := normalizeServer(c.server)
	if err != nil {
		return err
	}
	if c.user == "" && env.getenv("BERTH_USER") == "" {
		if u, err := promptLine(env, "Username: "); err == nil && u != "" {
			c.user = u
		}
	}
	cl, err := connect(&c, env)
	if err != nil {
		return err
	}
	var me struct {
		Name string `json:"name"`
	}
	if _, err := cl.do(http.MethodGet, "/api/v1/me", nil, &me); err != nil {
		return err
	}
	cf, err := loadCredentials(env)
	if err != nil {
		return err
	}
	cf.Servers[server] = savedLogin{User: cl.user, Password: cl.pass}
	path, err := saveCredentials(env, cf)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "Login succeeded: %s at %s\nCredentials saved in %s (mode 0600, password unencrypted; berth logout removes them).\n", me.Name, server, path)
	return nil
}

func cmdLogout(args []string, env *adminEnv) error {
	var c commonFlags
	fs := newFlagSet("logout", "logout [--server URL]\n\nRemoves the saved credentials of the server.", env, &c)
	if _, err := parseCommand(fs, args, 0, 0); err != nil {
		return err
	}
	server, err := normalizeServer(c.server)
	if err != nil {
		return err
	}
	cf, err := loadCredentials(env)
	if err != nil {
		return err
	}
	if _, ok := cf.Servers[server]; !ok {
		fmt.Fprintf(env.stdout, "Not logged in to %s\n", server)
		return nil
	}
	delete(cf.Servers, server)
	if _, err := saveCredentials(env, cf); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "Removed the credentials of %s\n", server)
	return nil
}

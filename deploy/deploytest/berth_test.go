package deploytest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// root is the repository root, from this package's directory.
const root = "../.."

// deployPath returns a path under deploy/.
func deployPath(parts ...string) string {
	return filepath.Join(append([]string{root, "deploy"}, parts...)...)
}

var (
	buildOnce sync.Once
	buildBin  string
	buildErr  error
	buildDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// berthBinary builds ./cmd/berth once per test run and returns its path.
func berthBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "berth-deploytest-"); buildErr != nil {
			return
		}
		buildBin = filepath.Join(buildDir, "berth")
		cmd := exec.Command("go", "build", "-o", buildBin, "./cmd/berth")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/berth: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBin
}

var (
	flagsOnce sync.Once
	flagsSet  map[string]bool // flag name -> takes a value
	flagsErr  error
)

// serveFlags returns the flags `berth serve -h` lists, each with whether it
// takes a value (boolean flags do not).
func serveFlags(t *testing.T) map[string]bool {
	t.Helper()
	bin := berthBinary(t)
	flagsOnce.Do(func() {
		var out bytes.Buffer
		cmd := exec.Command(bin, "serve", "-h")
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			flagsErr = fmt.Errorf("berth serve -h: %v\n%s", err, out.Bytes())
			return
		}
		// flag.PrintDefaults: "  -name type" or "  -name" for a boolean.
		re := regexp.MustCompile(`(?m)^  -([a-z0-9-]+)(?: ([a-z]+))?\s*$`)
		flagsSet = map[string]bool{}
		for _, m := range re.FindAllStringSubmatch(out.String(), -1) {
			flagsSet[m[1]] = m[2] != ""
		}
		if len(flagsSet) < 10 {
			flagsErr = fmt.Errorf("berth serve -h lists only %d flags:\n%s", len(flagsSet), out.Bytes())
		}
	})
	if flagsErr != nil {
		t.Fatal(flagsErr)
	}
	return flagsSet
}

// parseServe checks a `berth serve` argument list against the binary's flags
// and returns each flag's value (the last one given wins, as in the binary).
func parseServe(t *testing.T, where string, args []string) map[string]string {
	t.Helper()
	flags := serveFlags(t)
	if len(args) == 0 || args[0] != "serve" {
		t.Errorf("%s: command %q does not start with serve", where, args)
		return nil
	}
	got := map[string]string{}
	for i := 1; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			t.Errorf("%s: unexpected argument %q", where, a)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		takesValue, ok := flags[name]
		if !ok {
			t.Errorf("%s: flag --%s is not a flag of berth serve", where, name)
			continue
		}
		if takesValue && !hasValue {
			if i+1 >= len(args) {
				t.Errorf("%s: flag --%s needs a value", where, name)
				continue
			}
			i++
			value = args[i]
		}
		if !takesValue && !hasValue {
			value = "true"
		}
		got[name] = value
	}
	return got
}

// port returns the port of a "host:port" address, or fails.
func port(t *testing.T, where, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	n, err2 := strconv.Atoi(p)
	if err != nil || err2 != nil {
		t.Errorf("%s: %q is not host:port", where, addr)
		return -1
	}
	return n
}

func host(addr string) string {
	h, _, _ := net.SplitHostPort(addr)
	return h
}

// Command benchtable turns the output of ../shared/tools/bench/all.sh for two registries into
// one table: each figure for Distribution, for Berth, and how many times better Berth is.
//
//	go run .ci/benchtable/main.go ALL_OUTPUT DIST_URL BERTH_URL [RSS_FILE]
//
// RSS_FILE (written by .ci/bench.sh) holds lines "<url> <peak_kib> <max_sampled_kib> <reset>":
// the peak RSS of each server during its large-blob phase (VmHWM after resetting it through
// /proc/PID/clear_refs when reset=1, else since the process started).
//
// The line formats parsed are those of bench/large-blob.sh, bench/small-images.sh (regload
// and the crane loop) and bench/manifest-wrk.sh (wrk --latency plus a server-cpu line). It
// lives under .ci (ignored by ./... patterns) and uses only the standard library; it is run
// with `go run` by .ci/bench.sh.
package main

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// better says which direction of a figure is good.
type better int

const (
	higher better = iota
	lower
)

// row is one figure of the table.
type row struct {
	section, name, unit string
	better              better
	key                 string // the key under which values are collected per server
}

var rows = []row{
	{"large blob", "push crane", "MiB/s", higher, "large push crane"},
	{"large blob", "push skopeo", "MiB/s", higher, "large push skopeo"},
	{"large blob", "push curl (monolithic PUT)", "MiB/s", higher, "large push curl"},
	{"large blob", "pull crane", "MiB/s", higher, "large pull crane"},
	{"large blob", "pull skopeo", "MiB/s", higher, "large pull skopeo"},
	{"large blob", "pull curl", "MiB/s", higher, "large pull curl"},
	{"large blob", "server CPU per GiB pushed", "cpu-s", lower, "cpu per GiB pushed"},
	{"large blob", "server CPU per GiB pulled", "cpu-s", lower, "cpu per GiB pulled"},
	{"large blob", "server peak RSS during the phase", "MiB", lower, "peak rss"},
	{"small images", "regload push c=1", "ops/s", higher, "regload push c=1 rate"},
	{"small images", "regload push c=1 p99", "ms", lower, "regload push c=1 p99"},
	{"small images", "regload push c=4", "ops/s", higher, "regload push c=4 rate"},
	{"small images", "regload push c=4 p99", "ms", lower, "regload push c=4 p99"},
	{"small images", "server CPU per image push (regload)", "cpu-ms", lower, "cpu per push"},
	{"small images", "regload manifest GET c=1", "ops/s", higher, "regload pull-manifest c=1 rate"},
	{"small images", "regload manifest GET c=1 p99", "ms", lower, "regload pull-manifest c=1 p99"},
	{"small images", "regload manifest GET c=4", "ops/s", higher, "regload pull-manifest c=4 rate"},
	{"small images", "server CPU per manifest GET (regload)", "cpu-us", lower, "cpu per manifest get regload"},
	{"small images", "crane CLI push loop", "ops/s", higher, "crane-cli push rate"},
	{"small images", "crane CLI manifest loop", "ops/s", higher, "crane-cli pull-manifest rate"},
	{"wrk", "GET manifest by tag", "req/s", higher, "wrk tag rps"},
	{"wrk", "GET manifest by tag p50", "ms", lower, "wrk tag p50"},
	{"wrk", "GET manifest by tag p99", "ms", lower, "wrk tag p99"},
	{"wrk", "server CPU per manifest GET by tag", "cpu-us", lower, "wrk tag cpu per req"},
	{"wrk", "GET manifest by digest", "req/s", higher, "wrk digest rps"},
	{"wrk", "GET manifest by digest p99", "ms", lower, "wrk digest p99"},
	{"wrk", "server CPU per manifest GET by digest", "cpu-us", lower, "wrk digest cpu per req"},
	{"wrk", "GET 1 KiB-file blob", "req/s", higher, "wrk blob rps"},
	{"wrk", "GET 1 KiB-file blob p99", "ms", lower, "wrk blob p99"},
}

var (
	reHeader  = regexp.MustCompile(`^## (large-blob|small-images|manifest-wrk): (\S+)`)
	reLarge   = regexp.MustCompile(`^large (push|pull) (\w+)\s*: (\d+) B in ([\d.]+) s = [\d.]+ MB/s \(([\d.]+) MiB/s\)\s+server-cpu=([\d.]+|n/a)`)
	reFailed  = regexp.MustCompile(`^large (push|pull) (\w+)\s*: FAILED`)
	reRegload = regexp.MustCompile(`^regload (push|pull-manifest): n=(\d+) c=(\d+) errors=(\d+) elapsed=[\d.]+s rate=([\d.]+) ops/s p50=([\d.]+)ms p90=[\d.]+ms p99=([\d.]+)ms max=[\d.]+ms(?: server-cpu=([\d.]+)s)?`)
	reCrane   = regexp.MustCompile(`^crane-cli (push|pull-manifest): n=(\d+) c=\d+ errors=(\d+) elapsed=[\d.]+s rate=([\d.]+) ops/s(?: server-cpu=([\d.]+)s)?`)
	reTarget  = regexp.MustCompile(`^### GET /v2/\S+/(manifests|blobs)/(\S+) \(curl check: HTTP (\d+)\)`)
	rePct     = regexp.MustCompile(`^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$`)
	reReqs    = regexp.MustCompile(`^\s+(\d+) requests in`)
	reRPS     = regexp.MustCompile(`^Requests/sec:\s+([\d.]+)`)
	reNon2xx  = regexp.MustCompile(`^\s+Non-2xx or 3xx responses: (\d+)`)
	reSockErr = regexp.MustCompile(`^\s+Socket errors: (.*)`)
	reWrkCPU  = regexp.MustCompile(`^\s+server-cpu=([\d.]+)s over the run`)
)

// server collects the figures of one registry.
type server struct {
	v     map[string]float64
	notes []string
	// sums for the per-GiB and per-request figures
	pushBytes, pushCPU, pullBytes, pullCPU float64
	pushCPUOK, pullCPUOK                   bool
	getN, getCPU, pushN, pushCPUSum        float64
	wrkTarget                              string
	wrkReqs                                float64
}

func newServer() *server { return &server{v: map[string]float64{}} }

func (s *server) note(format string, args ...any) {
	s.notes = append(s.notes, fmt.Sprintf(format, args...))
}

func main() {
	if len(os.Args) < 4 {
		fmt.Fprintln(os.Stderr, "usage: benchtable ALL_OUTPUT DIST_URL BERTH_URL [RSS_FILE]")
		os.Exit(2)
	}
	distURL, berthURL := normURL(os.Args[2]), normURL(os.Args[3])
	servers := map[string]*server{distURL: newServer(), berthURL: newServer()}
	if err := parse(os.Args[1], servers); err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
	if len(os.Args) > 4 {
		if err := parseRSS(os.Args[4], servers); err != nil {
			fmt.Fprintln(os.Stderr, "benchtable:", err)
		}
	}
	for _, s := range servers {
		s.finish()
	}
	printTable(servers[distURL], servers[berthURL], distURL, berthURL)
}

func normURL(u string) string {
	u = strings.TrimSuffix(u, "/")
	if !strings.Contains(u, "://") {
		u = "http://" + u
	}
	return u
}

func parse(path string, servers map[string]*server) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var cur *server
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := reHeader.FindStringSubmatch(line); m != nil {
			cur = servers[normURL(m[2])]
			continue
		}
		if cur == nil {
			continue
		}
		s := cur
		switch {
		case reLarge.MatchString(line):
			m := reLarge.FindStringSubmatch(line)
			bytes, _ := strconv.ParseFloat(m[3], 64)
			mibs, _ := strconv.ParseFloat(m[5], 64)
			s.v["large "+m[1]+" "+m[2]] = mibs
			cpu, err := strconv.ParseFloat(m[6], 64)
			if m[1] == "push" {
				s.pushBytes += bytes
				s.pushCPU += cpu
				s.pushCPUOK = s.pushCPUOK || err == nil
			} else {
				s.pullBytes += bytes
				s.pullCPU += cpu
				s.pullCPUOK = s.pullCPUOK || err == nil
			}
		case reFailed.MatchString(line):
			m := reFailed.FindStringSubmatch(line)
			s.note("large %s %s FAILED", m[1], m[2])
		case reRegload.MatchString(line):
			m := reRegload.FindStringSubmatch(line)
			n, _ := strconv.ParseFloat(m[2], 64)
			key := "regload " + m[1] + " c=" + m[3]
			s.v[key+" rate"], _ = strconv.ParseFloat(m[5], 64)
			s.v[key+" p99"], _ = strconv.ParseFloat(m[7], 64)
			if m[4] != "0" {
				s.note("%s: %s errors", key, m[4])
			}
			if m[8] != "" {
				cpu, _ := strconv.ParseFloat(m[8], 64)
				if m[1] == "push" {
					s.pushN += n
					s.pushCPUSum += cpu
				} else {
					s.getN += n
					s.getCPU += cpu
				}
			}
		case reCrane.MatchString(line):
			m := reCrane.FindStringSubmatch(line)
			s.v["crane-cli "+m[1]+" rate"], _ = strconv.ParseFloat(m[4], 64)
			if m[3] != "0" {
				s.note("crane-cli %s: %s errors", m[1], m[3])
			}
		case reTarget.MatchString(line):
			m := reTarget.FindStringSubmatch(line)
			switch {
			case m[1] == "blobs":
				s.wrkTarget = "wrk blob"
			case strings.Contains(m[2], ":"):
				s.wrkTarget = "wrk digest"
			default:
				s.wrkTarget = "wrk tag"
			}
			s.wrkReqs = 0
			if m[3] != "200" {
				s.note("%s: curl check answered HTTP %s", s.wrkTarget, m[3])
			}
		case s.wrkTarget != "" && rePct.MatchString(line):
			m := rePct.FindStringSubmatch(line)
			s.v[s.wrkTarget+" p"+m[1]] = toMS(m[2], m[3])
		case s.wrkTarget != "" && reReqs.MatchString(line):
			s.wrkReqs, _ = strconv.ParseFloat(reReqs.FindStringSubmatch(line)[1], 64)
		case s.wrkTarget != "" && reRPS.MatchString(line):
			s.v[s.wrkTarget+" rps"], _ = strconv.ParseFloat(reRPS.FindStringSubmatch(line)[1], 64)
		case s.wrkTarget != "" && reNon2xx.MatchString(line):
			s.note("%s: %s non-2xx/3xx responses", s.wrkTarget, reNon2xx.FindStringSubmatch(line)[1])
		case s.wrkTarget != "" && reSockErr.MatchString(line):
			s.note("%s: socket errors %s", s.wrkTarget, reSockErr.FindStringSubmatch(line)[1])
		case s.wrkTarget != "" && reWrkCPU.MatchString(line):
			cpu, _ := strconv.ParseFloat(reWrkCPU.FindStringSubmatch(line)[1], 64)
			if s.wrkReqs > 0 {
				s.v[s.wrkTarget+" cpu per req"] = cpu / s.wrkReqs * 1e6
			}
		}
	}
	return sc.Err()
}

func toMS(v, unit string) float64 {
	f, _ := strconv.ParseFloat(v, 64)
	switch unit {
	case "us":
		return f / 1000
	case "s":
		return f * 1000
	}
	return f
}

func parseRSS(path string, servers map[string]*server) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 4 {
			continue
		}
		s := servers[normURL(f[0])]
		if s == nil {
			continue
		}
		peak, err1 := strconv.ParseFloat(f[1], 64)
		maxSampled, err2 := strconv.ParseFloat(f[2], 64)
		if err1 != nil || err2 != nil {
			continue
		}
		s.v["peak rss"] = math.Max(peak, maxSampled) / 1024
		if f[3] != "1" {
			s.note("peak RSS is VmHWM since the process started (could not reset it for the phase)")
		}
	}
	return nil
}

func (s *server) finish() {
	const gib = 1 << 30
	if s.pushCPUOK && s.pushBytes > 0 {
		s.v["cpu per GiB pushed"] = s.pushCPU / (s.pushBytes / gib)
	}
	if s.pullCPUOK && s.pullBytes > 0 {
		s.v["cpu per GiB pulled"] = s.pullCPU / (s.pullBytes / gib)
	}
	// server-cpu has a resolution of 10 ms (clock ticks): a total of 0 means "too little to
	// measure with this N", not zero, so it is shown as n/a.
	if s.pushN > 0 {
		if s.pushCPUSum > 0 {
			s.v["cpu per push"] = s.pushCPUSum / s.pushN * 1e3
		} else {
			s.note("server CPU per image push: below the 10 ms resolution over %.0f pushes (raise N)", s.pushN)
		}
	}
	if s.getN > 0 {
		if s.getCPU > 0 {
			s.v["cpu per manifest get regload"] = s.getCPU / s.getN * 1e6
		} else {
			s.note("server CPU per manifest GET (regload): below the 10 ms resolution over %.0f GETs (raise N)", s.getN)
		}
	}
}

func printTable(d, b *server, distURL, berthURL string) {
	fmt.Printf("Distribution = %s, Berth = %s\n", distURL, berthURL)
	fmt.Println("ratio = how many times better Berth is: Berth/Distribution for throughput (ops/s, MiB/s, req/s),")
	fmt.Println("        Distribution/Berth for latency, CPU and memory. >1 means Berth is better.")
	fmt.Println()
	fmt.Printf("%-40s %-7s %13s %13s %8s\n", "figure", "unit", "Distribution", "Berth", "ratio")
	section := ""
	for _, r := range rows {
		if r.section != section {
			section = r.section
			fmt.Printf("-- %s %s\n", section, strings.Repeat("-", 80-len(section)))
		}
		dv, dok := d.v[r.key]
		bv, bok := b.v[r.key]
		ratio := "-"
		if dok && bok {
			switch {
			case r.better == higher && dv > 0:
				ratio = fmt.Sprintf("%.2fx", bv/dv)
			case r.better == lower && bv > 0:
				ratio = fmt.Sprintf("%.2fx", dv/bv)
			}
		}
		fmt.Printf("%-40s %-7s %13s %13s %8s\n", r.name, r.unit, num(dv, dok), num(bv, bok), ratio)
	}
	for _, x := range []struct {
		name string
		s    *server
	}{{"Distribution", d}, {"Berth", b}} {
		for _, n := range x.s.notes {
			fmt.Printf("note (%s): %s\n", x.name, n)
		}
	}
}

func num(v float64, ok bool) string {
	switch {
	case !ok:
		return "n/a"
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

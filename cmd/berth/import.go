package main

// berth import: upload an image archive (docker save, or an OCI image layout;
// plain or gzip) into a workspace through POST /api/v1/workspaces/:ws/import.
// The file is streamed, never read whole; the server answers with a progress
// stream (application/x-ndjson), so the command shows the upload (bytes and
// rate, from what it has sent) and then the server's import phase, and ends
// with a report of every tag created.

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const importUsage = "import FILE --to WORKSPACE[/REPOSITORY[:TAG]] [--server URL] [--json] [--no-progress]\n\n" +
	"Uploads a `docker save` archive or an OCI image layout archive (tar, or tar.gz; FILE - reads\n" +
	"standard input) into WORKSPACE. Without REPOSITORY each image keeps the name the archive\n" +
	"gives it, without its registry host (alpine:3.19 becomes WORKSPACE/alpine:3.19); with it,\n" +
	"every image goes to WORKSPACE/REPOSITORY with its own tags; with TAG, the archive's one\n" +
	"image gets that tag. Existing tags are moved. A refused archive leaves nothing behind.\n" +
	"Progress goes to standard error (a bar on a terminal, a line every few seconds otherwise);\n" +
	"the report of what was created to standard output."

// runImport runs berth import and returns its exit code (as runAdmin does).
func runImport(args []string, env *adminEnv) int {
	if env.getenv == nil {
		env.getenv = os.Getenv
	}
	err := cmdImport(args, env)
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(env.stderr, "berth import: %v\n", err)
		return 2
	case errors.Is(err, errFlagParse):
		return 2
	}
	fmt.Fprintf(env.stderr, "berth import: %v\n", err)
	return 1
}

// importTarget is --to: WORKSPACE[/REPOSITORY[:TAG]].
func parseImportTarget(to string) (ws, repo, tag string, err error) {
	if to == "" {
		return "", "", "", usagef("--to WORKSPACE[/REPOSITORY[:TAG]] is required")
	}
	ws, repo, _ = strings.Cut(to, "/")
	if i := strings.LastIndexByte(repo, ':'); i >= 0 {
		repo, tag = repo[:i], repo[i+1:]
		if tag == "" {
			return "", "", "", usagef("--to %q: empty tag", to)
		}
	}
	if ws == "" || (strings.Contains(to, "/") && repo == "") || strings.Contains(ws, ":") {
		return "", "", "", usagef("--to %q: want WORKSPACE[/REPOSITORY[:TAG]]", to)
	}
	return ws, repo, tag, nil
}

type importAnswer struct {
	Images []struct {
		Repository string `json:"repository"`
		Tag        string `json:"tag"`
		Digest     string `json:"digest"`
		MediaType  string `json:"mediaType"`
		Size       int64  `json:"size"`
		Layers     []struct {
			Digest string `json:"digest"`
		} `json:"layers"`
		Manifests []json.RawMessage `json:"manifests"`
	} `json:"images"`
}

func cmdImport(args []string, env *adminEnv) error {
	var c commonFlags
	fs := newFlagSet("import", importUsage, env, &c)
	to := fs.String("to", "", "WORKSPACE[/REPOSITORY[:TAG]] to import into (required)")
	noProgress := fs.Bool("no-progress", false, "do not show progress on standard error")
	pos, err := parseCommand(fs, args, 1, 1)
	if err != nil {
		return err
	}
	ws, repo, tag, err := parseImportTarget(*to)
	if err != nil {
		return err
	}
	var in io.Reader
	size := int64(-1)
	name := pos[0]
	if name == "-" {
		in = env.stdin
	} else {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			size = fi.Size()
		}
		in = f
	}
	cl, err := connect(&c, env)
	if err != nil {
		return err
	}
	q := url.Values{}
	if repo != "" {
		q.Set("repository", repo)
	}
	if tag != "" {
		q.Set("tag", tag)
	}
	u := cl.server + "/api/v1/workspaces/" + url.PathEscape(ws) + "/import"
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	prog := newProgressBar(env.stderr, size, *noProgress)
	body := &sentCounter{r: in, n: &prog.sent}
	req, err := http.NewRequest(http.MethodPost, u, body)
	if err != nil {
		return err
	}
	req.ContentLength = size
	if size == 0 {
		req.Body = http.NoBody
	}
	req.Header.Set("Authorization", "Bearer "+cl.token)
	req.Header.Set("Content-Type", "application/x-tar")
	req.Header.Set("Accept", "application/x-ndjson")
	prog.start()
	// No timeout: an upload takes as long as the file needs.
	resp, err := (&http.Client{}).Do(req)
	if err != nil {
		prog.stop("")
		return fmt.Errorf("reach %s: %w", cl.server, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		prog.stop("")
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if ae := decodeAPIError(resp.StatusCode, raw); ae != nil {
			return ae
		}
		return &serverError{Status: resp.StatusCode, Message: http.StatusText(resp.StatusCode)}
	}
	result, err := readImportStream(resp, prog)
	if err != nil {
		prog.stop("")
		return err
	}
	prog.stop(fmt.Sprintf("imported %s in %s", humanSize(prog.sent.Load()), time.Since(prog.began).Round(100*time.Millisecond)))
	if c.json {
		return printJSON(env.stdout, result)
	}
	var a importAnswer
	if err := json.Unmarshal(result, &a); err != nil {
		return fmt.Errorf("decode the result: %w", err)
	}
	rows := make([][]string, 0, len(a.Images))
	for _, im := range a.Images {
		layers := fmt.Sprint(len(im.Layers))
		if len(im.Manifests) > 0 {
			layers = fmt.Sprintf("%d images", len(im.Manifests))
		}
		rows = append(rows, []string{im.Repository, im.Tag, im.Digest, layers, humanSize(im.Size)})
	}
	if err := table(env.stdout, "REPOSITORY\tTAG\tDIGEST\tLAYERS\tSIZE", rows); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "Imported %d tag(s) into workspace %s\n", len(a.Images), ws)
	return nil
}

// readImportStream reads the server's progress lines and returns the result
// of the "done" line, or the error of the "error" line. A plain 201 answer (a
// server that does not stream) is the result itself.
func readImportStream(resp *http.Response, prog *progressBar) (json.RawMessage, error) {
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/x-ndjson") {
		return io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for sc.Scan() {
		var line struct {
			Phase  string          `json:"phase"`
			Bytes  int64           `json:"bytes"`
			Total  int64           `json:"total"`
			Result json.RawMessage `json:"result"`
			Status int             `json:"status"`
			Error  struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return nil, fmt.Errorf("progress stream: %w", err)
		}
		switch line.Phase {
		case "import":
			prog.importing(line.Bytes, line.Total)
		case "done":
			return line.Result, nil
		case "error":
			return nil, &serverError{Status: line.Status, Code: line.Error.Code, Message: line.Error.Message}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("the server's answer broke off: %w", err)
	}
	return nil, errors.New("the server's answer ended without a result")
}

// sentCounter counts the bytes of the file sent.
type sentCounter struct {
	r io.Reader
	n *atomic.Int64
}

func (s *sentCounter) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.n.Add(int64(n))
	return n, err
}

// progressBar shows the upload on standard error: a bar redrawn in place on a
// terminal, a plain line every plainEvery otherwise; then the server's import
// phase.
type progressBar struct {
	w     io.Writer
	total int64
	tty   bool
	off   bool
	sent  atomic.Int64
	began time.Time

	mu          sync.Mutex // guards the fields below and writing to w
	imp, impTot int64
	inImport    bool
	done        chan struct{}
	stopped     sync.WaitGroup
	lastPlain   time.Time
	drawn       bool
}

const (
	ttyEvery   = 200 * time.Millisecond
	plainEvery = 5 * time.Second
)

func newProgressBar(w io.Writer, total int64, off bool) *progressBar {
	f, ok := w.(*os.File)
	return &progressBar{w: w, total: total, off: off, tty: ok && isTerminal(f), done: make(chan struct{})}
}

func (p *progressBar) start() {
	p.began = time.Now()
	p.lastPlain = p.began
	if p.off {
		return
	}
	p.stopped.Add(1)
	go func() {
		defer p.stopped.Done()
		every := ttyEvery
		if !p.tty {
			every = time.Second
		}
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-p.done:
				return
			case <-t.C:
				p.draw(false)
			}
		}
	}()
}

// importing records the server's import progress.
func (p *progressBar) importing(n, total int64) {
	p.mu.Lock()
	p.imp, p.impTot, p.inImport = n, total, true
	p.mu.Unlock()
}

func (p *progressBar) draw(final bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	sent := p.sent.Load()
	elapsed := time.Since(p.began)
	rate := float64(sent) / max(elapsed.Seconds(), 0.001)
	var line string
	if p.inImport && !final {
		line = "importing"
		if p.impTot > 0 {
			line += fmt.Sprintf(" %3d%% (%s of %s stored)", p.imp*100/p.impTot, humanSize(p.imp), humanSize(p.impTot))
		}
	} else {
		line = "uploading " + humanSize(sent)
		if p.total > 0 {
			pct := sent * 100 / p.total
			if p.tty {
				const width = 30
				fill := int(pct * width / 100)
				line = fmt.Sprintf("[%s%s] %3d%% ", strings.Repeat("=", fill), strings.Repeat(" ", width-fill), pct) + humanSize(sent) + " / " + humanSize(p.total)
			} else {
				line += fmt.Sprintf(" of %s (%d%%)", humanSize(p.total), pct)
			}
		}
		line += fmt.Sprintf(" at %s/s", humanSize(int64(rate)))
	}
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		p.drawn = true
		return
	}
	if final || time.Since(p.lastPlain) >= plainEvery {
		p.lastPlain = time.Now()
		fmt.Fprintln(p.w, line)
	}
}

// stop ends the display, with a last line (msg, when not empty).
func (p *progressBar) stop(msg string) {
	if p.off {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	close(p.done)
	p.stopped.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty && p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
	}
	if msg != "" {
		fmt.Fprintln(p.w, msg)
	}
}

// humanSize writes n bytes in binary units.
func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, exp := float64(n), 0
	for v >= unit && exp < 4 {
		v /= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGT"[exp-1])
}

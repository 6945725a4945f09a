package main

// Garbage collection, fsck, the trash and deletes, as clients of the
// management API (see admin.go for the common flags and exit codes):
//
//	berth gc [--workspace WS] [--dry-run] [--delete-untagged[=false]] [--wait]
//	berth gc list | show ID
//	berth fsck [--repair]
//	berth trash list WORKSPACE | restore WORKSPACE ID
//	berth delete REPO | REPO:TAG | REPO@DIGEST

import (
	"errors"
	"flag"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

const gcUsage = `garbage collection and deletes (against a running node; -h for flags):
  gc        start a run: gc [--workspace WS] [--dry-run] [--delete-untagged] [--wait];
            gc list; gc show ID
  fsck      check every node's blob files: fsck [--repair]
  trash     trash list WORKSPACE; trash restore WORKSPACE ID
  delete    soft-delete a repository, tag or manifest: delete REPO | REPO:TAG | REPO@DIGEST
`

// runGCAdmin runs gc, fsck, trash or delete and returns its exit code.
func runGCAdmin(cmd string, args []string, env *adminEnv) int {
	return runCommand(cmd, env, func() error {
		switch cmd {
		case "gc":
			if len(args) > 0 {
				switch args[0] {
				case "list":
					return cmdGCList(args[1:], env)
				case "show":
					return cmdGCShow(args[1:], env)
				}
			}
			return cmdGCStart(args, env)
		case "fsck":
			return cmdFsck(args, env)
		case "trash":
			if len(args) == 0 || (args[0] != "list" && args[0] != "restore") {
				return usagef("use berth trash list WORKSPACE, or berth trash restore WORKSPACE ID")
			}
			if args[0] == "list" {
				return cmdTrashList(args[1:], env)
			}
			return cmdTrashRestore(args[1:], env)
		case "delete":
			return cmdDelete(args, env)
		}
		return usagef("unknown command %q", cmd)
	})
}

// gcRun is a run as GET /api/v1/gc/:id answers it.
type gcRun struct {
	ID                 string                  `json:"id"`
	State              string                  `json:"state"`
	DryRun             bool                    `json:"dryRun"`
	Workspace          string                  `json:"workspace"`
	DeleteUntagged     bool                    `json:"deleteUntagged"`
	StartedBy          string                  `json:"startedBy"`
	Requested          time.Time               `json:"requested"`
	Ended              *time.Time              `json:"ended"`
	GracePeriodSeconds float64                 `json:"gracePeriodSeconds"`
	RetentionSeconds   float64                 `json:"retentionSeconds"`
	MarkSeconds        float64                 `json:"markSeconds"`
	PauseSeconds       float64                 `json:"pauseSeconds"`
	DurationSeconds    float64                 `json:"durationSeconds"`
	Candidates         gcCounts                `json:"candidates"`
	Reclaimed          gcCounts                `json:"reclaimed"`
	Nodes              map[string]gcNodeReport `json:"nodes"`
	PendingNodes       []string                `json:"pendingNodes"`
	Errors             []string                `json:"errors"`
}

type gcCounts struct {
	Blobs        int   `json:"blobs"`
	Bytes        int64 `json:"bytes"`
	Manifests    int   `json:"manifests"`
	Tags         int   `json:"tags"`
	Repositories int   `json:"repositories"`
	Workspaces   int   `json:"workspaces"`
	TrashItems   int   `json:"trashItems"`
}

type gcNodeReport struct {
	Files          int      `json:"files"`
	Bytes          int64    `json:"bytes"`
	Kept           int      `json:"kept"`
	Orphans        int      `json:"orphans"`
	OrphanBytes    int64    `json:"orphanBytes"`
	UploadsExpired int      `json:"uploadsExpired"`
	Errors         []string `json:"errors"`
}

func (r *gcRun) finished() bool {
	return r.State == "done" || r.State == "aborted" || r.State == "failed"
}

// gcPollInterval is how often --wait asks for the run's state.
var gcPollInterval = 500 * time.Millisecond

func cmdGCStart(args []string, env *adminEnv) error {
	var c commonFlags
	fs := newFlagSet("gc", "gc [--workspace WS] [--dry-run] [--delete-untagged[=false]] [--wait] [--timeout D]\n\n"+
		"Starts a garbage collection run (cloud admins): deleted items past the retention, and\n"+
		"blobs nothing reaches that are older than the grace period, are removed from every\n"+
		"node. --dry-run reports what would go and changes nothing; --wait waits for the run\n"+
		"(and every node's file deletions) and prints its report.", env, &c)
	ws := fs.String("workspace", "", "only this workspace's deleted items, untagged manifests and blobs linked only there")
	dry := fs.Bool("dry-run", false, "report what would be reclaimed; change nothing")
	untagged := fs.Bool("delete-untagged", false, "also reclaim untagged manifests nothing reaches (default: the servers' --gc-delete-untagged)")
	wait := fs.Bool("wait", false, "wait for the run to end and print its report")
	timeout := fs.Duration("timeout", 30*time.Minute, "with --wait: give up waiting after this long")
	if _, err := parseCommand(fs, args, 0, 0); err != nil {
		return err
	}
	body := map[string]any{"dryRun": *dry}
	if *ws != "" {
		body["workspace"] = *ws
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "delete-untagged" {
			body["deleteUntagged"] = *untagged
		}
	})
	cl, err := connect(&c, env)
	if err != nil {
		return err
	}
	var run gcRun
	raw, err := cl.do(http.MethodPost, "/api/v1/gc", body, &run)
	if err != nil {
		return err
	}
	if !*wait {
		if c.json {
			return printJSON(env.stdout, raw)
		}
		fmt.Fprintf(env.stdout, "Started garbage collection run %s (berth gc show %s for its report)\n", run.ID, run.ID)
		return nil
	}
	raw, err = waitGC(cl, run.ID, *timeout, &run)
	if err != nil {
		return err
	}
	if c.json {
		if err := printJSON(env.stdout, raw); err != nil {
			return err
		}
	} else if err := printGCRun(env, &run); err != nil {
		return err
	}
	if run.State != "done" {
		return fmt.Errorf("run %s ended %s", run.ID, run.State)
	}
	return nil
}

// waitGC polls a run until it ended and every node reported its file
// deletions (or timeout).
func waitGC(cl *apiClient, id string, timeout time.Duration, run *gcRun) ([]byte, error) {
	deadline := time.Now().Add(timeout)
	for {
		*run = gcRun{}
		raw, err := cl.do(http.MethodGet, "/api/v1/gc/"+esc(id), nil, run)
		if err != nil {
			return nil, err
		}
		if run.finished() && len(run.PendingNodes) == 0 {
			return raw, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("run %s is still %s after %s (pending nodes: %v)", id, run.State, timeout, run.PendingNodes)
		}
		time.Sleep(gcPollInterval)
	}
}

func bytesString(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func secs(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(time.Microsecond).String()
}

func printGCRun(env *adminEnv, r *gcRun) error {
	w := env.stdout
	kind := "run"
	if r.DryRun {
		kind = "dry run"
	}
	fmt.Fprintf(w, "Garbage collection %s %s: %s\n", kind, r.ID, r.State)
	fmt.Fprintf(w, "  started by %s at %s", orDash(r.StartedBy), r.Requested.Local().Format(time.RFC3339))
	if r.Workspace != "" {
		fmt.Fprintf(w, ", workspace %s", r.Workspace)
	}
	fmt.Fprintf(w, "\n  grace period %s, deleted-item retention %s, delete untagged: %s\n",
		secs(r.GracePeriodSeconds), secs(r.RetentionSeconds), yesNo(r.DeleteUntagged))
	fmt.Fprintf(w, "  mark %s, write pause %s, total %s\n", secs(r.MarkSeconds), secs(r.PauseSeconds), secs(r.DurationSeconds))
	counts := r.Reclaimed
	label := "reclaimed"
	if r.DryRun {
		counts, label = r.Candidates, "would reclaim"
	}
	fmt.Fprintf(w, "  %s: %d blobs (%s), %d manifests, %d tags, %d repositories, %d workspaces (%d trash items)\n",
		label, counts.Blobs, bytesString(counts.Bytes), counts.Manifests, counts.Tags, counts.Repositories, counts.Workspaces, counts.TrashItems)
	for _, e := range r.Errors {
		fmt.Fprintf(w, "  error: %s\n", e)
	}
	if len(r.Nodes) == 0 && len(r.PendingNodes) == 0 {
		return nil
	}
	ids := make([]string, 0, len(r.Nodes))
	for id := range r.Nodes {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var rows [][]string
	for _, id := range ids {
		n := r.Nodes[id]
		rows = append(rows, []string{id, strconv.Itoa(n.Files), bytesString(n.Bytes), strconv.Itoa(n.Kept),
			strconv.Itoa(n.Orphans), bytesString(n.OrphanBytes), strconv.Itoa(n.UploadsExpired), strconv.Itoa(len(n.Errors))})
	}
	for _, id := range r.PendingNodes {
		rows = append(rows, []string{id, "pending", "-", "-", "-", "-", "-", "-"})
	}
	fmt.Fprintln(w)
	return table(w, "NODE\tFILES\tBYTES\tKEPT\tORPHANS\tORPHAN BYTES\tUPLOADS EXPIRED\tERRORS", rows)
}

func cmdGCList(args []string, env *adminEnv) error {
	var c commonFlags
	fs := newFlagSet("gc list", "gc list\n\nLists the garbage collection runs, newest first.", env, &c)
	if _, err := parseCommand(fs, args, 0, 0); err != nil {
		return err
	}
	cl, err := connect(&c, env)
	if err != nil {
		return err
	}
	var list struct {
		Items []gcRun `json:"items"`
	}
	raw, err := cl.do(http.MethodGet, "/api/v1/gc", nil, &list)
	if err != nil || c.json {
		return jsonOr(env, raw, err)
	}
	var rows [][]string
	for _, r := range list.Items {
		counts := r.Reclaimed
		if r.DryRun {
			counts = r.Candidates
		}
		rows = append(rows, []string{r.ID, r.State, yesNo(r.DryRun), orDash(r.Workspace), day(r.Requested),
			strconv.Itoa(counts.Blobs), bytesString(counts.Bytes), secs(r.PauseSeconds)})
	}
	return table(env.stdout, "ID\tSTATE\tDRY RUN\tWORKSPACE\tREQUESTED\tBLOBS\tBYTES\tPAUSE", rows)
}

func cmdGCShow(args []string, env *adminEnv) error {
	var c commonFlags
	fs := newFlagSet("gc show", "gc show ID\n\nPrints a garbage collection run's report.", env, &c)
	pos, err := parseCommand(fs, args, 1, 1)
	if err != nil {
		return err
	}
	cl, err := connect(&c, env)
	if err != nil {
		return err
	}
	var run gcRun
	raw, err := cl.do(http.MethodGet, "/api/v1/gc/"+esc(pos[0]), nil, &run)
	if err != nil || c.json {
		return jsonOr(env, raw, err)
	}
	return printGCRun(env, &run)
}

type fsckNode struct {
	Node           string   `json:"node"`
	Checked        int      `json:"checked"`
	Bytes          int64    `json:"bytes"`
	Missing        []string `json:"missing"`
	Corrupt        []string `json:"corrupt"`
	Orphans        []string `json:"orphans"`
	Repaired       int      `json:"repaired"`
	OrphansRemoved int      `json:"orphansRemoved"`
	Errors         []string `json:"errors"`
	Seconds        float64  `json:"seconds"`
}

func cmdFsck(args []string, env *adminEnv) error {
	var c commonFlags
	fs := newFlagSet("fsck", "fsck [--repair]\n\n"+
		"Every live node checks that each blob the metadata places on it is there with the\n"+
		"right size and digest (reading it back), and that no file is orphaned. --repair\n"+
		"fetches bad or missing copies again from other holders and removes orphans.\n"+
		"Exit code 1 when something is (still) wrong.", env, &c)
	repair := fs.Bool("repair", false, "repair what is found")
	if _, err := parseCommand(fs, args, 0, 0); err != nil {
		return err
	}
	cl, err := connect(&c, env)
	if err != nil {
		return err
	}
	cl.http.Timeout = 0 // a scrub reads every blob back: it takes as long as it takes
	var rep struct {
		Clean bool       `json:"clean"`
		Nodes []fsckNode `json:"nodes"`
	}
	raw, err := cl.do(http.MethodPost, "/api/v1/fsck", map[string]any{"repair": *repair}, &rep)
	if err != nil {
		return err
	}
	if c.json {
		if err := printJSON(env.stdout, raw); err != nil {
			return err
		}
	} else {
		var rows [][]string
		for _, n := range rep.Nodes {
			rows = append(rows, []string{n.Node, strconv.Itoa(n.Checked), bytesString(n.Bytes), strconv.Itoa(len(n.Missing)),
				strconv.Itoa(len(n.Corrupt)), strconv.Itoa(len(n.Orphans)), strconv.Itoa(n.Repaired), strconv.Itoa(n.OrphansRemoved),
				strconv.Itoa(len(n.Errors)), secs(n.Seconds)})
		}
		if err := table(env.stdout, "NODE\tCHECKED\tREAD\tMISSING\tCORRUPT\tORPHANS\tREPAIRED\tREMOVED\tERRORS\tTOOK", rows); err != nil {
			return err
		}
		for _, n := range rep.Nodes {
			for _, d := range n.Missing {
				fmt.Fprintf(env.stdout, "%s: missing %s\n", n.Node, d)
			}
			for _, d := range n.Corrupt {
				fmt.Fprintf(env.stdout, "%s: corrupt %s\n", n.Node, d)
			}
			for _, d := range n.Orphans {
				fmt.Fprintf(env.stdout, "%s: orphan %s\n", n.Node, d)
			}
			for _, e := range n.Errors {
				fmt.Fprintf(env.stdout, "%s: error %s\n", n.Node, e)
			}
		}
	}
	if !rep.Clean {
		return errors.New("fsck found problems")
	}
	return nil
}

type trashItem struct {
	ID        string    `json:"id"`
	Kind      string    `json:"kind"`
	DeletedBy string    `json:"deletedBy"`
	Deleted   time.Time `json:"deleted"`
	Size      int64     `json:"size"`
}

func cmdTrashList(args []string, env *adminEnv) error {
	var c commonFlags
	fs := newFlagSet("trash list", "trash list WORKSPACE\n\nLists what was deleted in the workspace, newest first.", env, &c)
	pos, err := parseCommand(fs, args, 1, 1)
	if err != nil {
		return err
	}
	cl, err := connect(&c, env)
	if err != nil {
		return err
	}
	var list struct {
		Items []trashItem `json:"items"`
	}
	raw, err := cl.do(http.MethodGet, "/api/v1/workspaces/"+esc(pos[0])+"/trash", nil, &list)
	if err != nil || c.json {
		return jsonOr(env, raw, err)
	}
	var rows [][]string
	for _, it := range list.Items {
		rows = append(rows, []string{it.ID, it.Kind, orDash(it.DeletedBy), it.Deleted.Local().Format("2006-01-02 15:04:05")})
	}
	return table(env.stdout, "ID\tKIND\tDELETED BY\tDELETED", rows)
}

func cmdTrashRestore(args []string, env *adminEnv) error {
	var c commonFlags
	fs := newFlagSet("trash restore", "trash restore WORKSPACE ID\n\nRestores a trash item (its id as berth trash list shows it).", env, &c)
	pos, err := parseCommand(fs, args, 2, 2)
	if err != nil {
		return err
	}
	cl, err := connect(&c, env)
	if err != nil {
		return err
	}
	raw, err := cl.do(http.MethodPost, "/api/v1/workspaces/"+esc(pos[0])+"/trash/restore", map[string]string{"id": pos[1]}, nil)
	if err != nil {
		return err
	}
	if c.json {
		return printJSON(env.stdout, raw)
	}
	return done(env, &c, "Restored %s", pos[1])
}

// deletePath turns REPO, REPO:TAG or REPO@DIGEST into its management API path.
func deletePath(ref string) (string, error) {
	repo, d, isDigest := strings.Cut(ref, "@")
	if isDigest {
		if repo == "" || !strings.Contains(d, ":") {
			return "", usagef("%q: want REPO@ALGORITHM:HEX", ref)
		}
		return "/api/v1/repositories/" + repo + "/manifests/" + d, nil
	}
	if i := strings.LastIndex(ref, ":"); i > 0 && !strings.Contains(ref[i:], "/") {
		return "/api/v1/repositories/" + ref[:i] + "/tags/" + ref[i+1:], nil
	}
	if !strings.Contains(ref, "/") {
		return "", usagef("%q: a repository is WORKSPACE/PATH", ref)
	}
	return "/api/v1/repositories/" + ref, nil
}

func cmdDelete(args []string, env *adminEnv) error {
	var c commonFlags
	fs := newFlagSet("delete", "delete REPO | REPO:TAG | REPO@DIGEST\n\n"+
		"Soft-deletes a repository, a tag or a manifest (with its tags): hidden at once,\n"+
		"restorable with berth trash restore until garbage collection reclaims it.", env, &c)
	pos, err := parseCommand(fs, args, 1, 1)
	if err != nil {
		return err
	}
	path, err := deletePath(pos[0])
	if err != nil {
		return err
	}
	cl, err := connect(&c, env)
	if err != nil {
		return err
	}
	var it trashItem
	raw, err := cl.do(http.MethodDelete, path, nil, &it)
	if err != nil {
		return err
	}
	if c.json {
		return printJSON(env.stdout, raw)
	}
	return done(env, &c, "Deleted %s (trash item %s; berth trash restore restores it)", pos[0], it.ID)
}

package node

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// TestImportDirections enforces the dependency rules of ARCHITECTURE.md:
// cmd -> node -> {api, cluster, blobstore, meta}; api never imports the cluster,
// Raft, Pebble or memberlist; cluster never imports meta; meta and blobstore import
// no other Berth package (meta/fsm may import meta).
func TestImportDirections(t *testing.T) {
	const mod = "github.com/berth-registry/berth/"
	out, err := exec.Command("go", "list", "-json=ImportPath,Deps", "github.com/berth-registry/berth/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	forbidden := map[string][]string{
		"api":       {mod + "cluster", mod + "node", mod + "meta/fsm", "github.com/hashicorp/raft", "github.com/cockroachdb/pebble", "github.com/hashicorp/memberlist"},
		"cluster":   {mod + "meta", mod + "api", mod + "blobstore", mod + "node"},
		"meta":      {mod},
		"meta/fsm":  {mod + "api", mod + "cluster", mod + "blobstore", mod + "node"},
		"blobstore": {mod},
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	seen := 0
	for dec.More() {
		var p struct {
			ImportPath string
			Deps       []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		rules, ok := forbidden[strings.TrimPrefix(p.ImportPath, mod)]
		if !ok {
			continue
		}
		seen++
		for _, d := range p.Deps {
			for _, f := range rules {
				if d == f || strings.HasPrefix(d, f+"/") || (strings.HasSuffix(f, "/") && strings.HasPrefix(d, f)) {
					t.Errorf("%s imports %s", p.ImportPath, d)
				}
			}
		}
	}
	if seen != len(forbidden) {
		t.Errorf("checked %d packages, want %d: a package was renamed?", seen, len(forbidden))
	}
}

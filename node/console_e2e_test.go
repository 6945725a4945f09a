package node

// End-to-end test of the web console in a real headless browser (Debian's
// chromium, driven with chromedp) against a real node: log in, create a
// workspace, upload an image archive and watch the progress, see the tags and
// their platforms, edit a description, delete a tag and the image and restore
// them from the trash, run a dry-run garbage collection as the cloud admin, read
// the push guide, the admin pages and the cluster page, create a robot account,
// switch to Chinese, log out. Steps whose API the server does not list in its
// OpenAPI document (import, trash, GC) are logged as not tested.
//
// A screenshot of every page is written to $BERTH_ARTIFACTS/console (default
// /tmp/berth-console-artifacts/console), which the test log names; t.TempDir
// would be removed with the test.
//
// Like the e2e test of cmd/berth: skipped under -short; skipped with a message
// when chromium is missing, unless BERTH_E2E_REQUIRE=1 (make test), which
// makes that a failure. BERTH_CHROMIUM names the browser binary.

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// consoleBrowser finds the browser, or skips (fails under BERTH_E2E_REQUIRE=1).
func consoleBrowser(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("BERTH_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "console e2e: chromium not found in PATH; install it with `apt-get install -y chromium` (or `make tools`)"
	if os.Getenv("BERTH_E2E_REQUIRE") == "1" {
		t.Fatalf("%s (BERTH_E2E_REQUIRE=1: a missing tool is an error)", msg)
	}
	t.Skip(msg)
	return ""
}

// consoleArtifacts is where the screenshots go; it is emptied of old ones.
func consoleArtifacts(t *testing.T) string {
	t.Helper()
	base := os.Getenv("BERTH_ARTIFACTS")
	if base == "" {
		base = filepath.Join(os.TempDir(), "berth-console-artifacts")
	}
	dir := filepath.Join(base, "console")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	old, _ := filepath.Glob(filepath.Join(dir, "*.png"))
	for _, f := range old {
		_ = os.Remove(f)
	}
	return dir
}

// writeConsoleArchive writes a `docker save` archive (legacy layout) of one
// image named ref whose single layer holds layerSize random bytes.
func writeConsoleArchive(t *testing.T, path, ref string, layerSize int) {
	t.Helper()
	content := make([]byte, layerSize)
	_, _ = rand.Read(content)
	var layer bytes.Buffer
	lw := tar.NewWriter(&layer)
	if err := lw.WriteHeader(&tar.Header{Name: "random.bin", Mode: 0o644, Size: int64(len(content)), ModTime: time.Unix(0, 0)}); err != nil {
		t.Fatal(err)
	}
	_, _ = lw.Write(content)
	if err := lw.Close(); err != nil {
		t.Fatal(err)
	}
	hexOf := func(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }
	diff := hexOf(layer.Bytes())
	config := fmt.Appendf(nil, `{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created_by":"console e2e"}]}`, diff)
	cfg := hexOf(config)
	manifest, _ := json.Marshal([]map[string]any{{"Config": cfg + ".json", "RepoTags": []string{ref}, "Layers": []string{diff + "/layer.tar"}}})
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	for _, e := range []struct {
		name string
		body []byte
	}{{cfg + ".json", config}, {diff + "/layer.tar", layer.Bytes()}, {"manifest.json", manifest}} {
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), ModTime: time.Unix(0, 0)}); err != nil {
			t.Fatal(err)
		}
		_, _ = tw.Write(e.body)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestConsoleE2E(t *testing.T) {
	if testing.Short() {
		t.Skip("console e2e: skipped in -short mode")
	}
	browser := consoleBrowser(t)
	artifacts := consoleArtifacts(t)
	t.Logf("console e2e: screenshots in %s", artifacts)

	_, base := startNode(t, t.TempDir())
	host := strings.TrimPrefix(base, "http://")

	// Which optional APIs the server has, from its OpenAPI document.
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if r := do(t, "GET", base+"/api/v1/openapi.json", nil); r.status != 200 || json.Unmarshal(r.body, &doc) != nil {
		t.Fatalf("openapi.json: %d", r.status)
	}
	hasOp := func(method, path string) bool { _, ok := doc.Paths[path][method]; return ok }
	hasImport := hasOp("post", "/api/v1/workspaces/{workspace}/import")
	hasTrash := hasOp("get", "/api/v1/workspaces/{workspace}/trash")
	hasGC := hasOp("post", "/api/v1/gc")
	t.Logf("console e2e: import API %v, trash API %v, GC API %v", hasImport, hasTrash, hasGC)

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(browser),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("lang", "en-US"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1366, 900),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()
	if err := chromedp.Do(bctx); err != nil { // starts the browser, with no deadline
		t.Fatalf("start %s: %v", browser, err)
	}
	ctx, cancel := context.WithTimeout(bctx, 4*time.Minute)
	defer cancel()

	step := func(name string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
		defer scancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			consoleShot(t, ctx, artifacts, "failed-"+name)
			t.Fatalf("%s: %v", name, err)
		}
	}
	eval := func(js string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
		if err != nil {
			t.Fatalf("evaluate %s: %v", js, err)
		}
		return v
	}
	waitJS := func(name, js string) {
		t.Helper()
		sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
		defer scancel()
		if _, err := chromedp.Run(sctx, chromedp.Poll[bool](js, chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
			consoleShot(t, ctx, artifacts, "failed-"+name)
			t.Fatalf("%s: waiting for %s: %v", name, js, err)
		}
	}
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	n := 0
	page := func(name string) {
		t.Helper()
		n++
		consoleShot(t, ctx, artifacts, fmt.Sprintf("%02d-%s", n, name))
	}

	// Log in.
	step("open", chromedp.Navigate(base+"/"), chromedp.WaitVisible(css("#login-form")))
	page("login")
	step("log in",
		chromedp.SendKeys(css("#login-user"), "admin"),
		chromedp.SendKeys(css("#login-pass"), testAdminPassword),
		chromedp.Click(css("#login-submit")),
		chromedp.WaitVisible(css("#ws-table")),
		chromedp.WaitVisible(css(`#ws-table tr[data-ws="library"]`)))
	if got := eval(`document.getElementById('user-name').textContent`); !strings.HasPrefix(got, "admin") {
		t.Errorf("the top bar shows user %q, want admin", got)
	}
	page("workspaces")

	// Create a workspace.
	const ws = "console-e2e"
	step("create workspace",
		chromedp.Click(css("#ws-create-open")),
		chromedp.WaitReady(css(`#ws-create-project option[value="default"]`)),
		chromedp.SetValue(css("#ws-create-project"), "default"),
		chromedp.SendKeys(css("#ws-create-name"), ws),
		chromedp.SendKeys(css("#ws-create-description"), "made by the browser test"),
		chromedp.Click(css("#ws-create-submit")),
		chromedp.WaitVisible(css(`#ws-table tr[data-ws="`+ws+`"]`)))
	page("workspace-created")
	if r := do(t, "GET", base+"/api/v1/workspaces/"+ws, nil); r.status != 200 {
		t.Fatalf("the created workspace: %d %s", r.status, r.body)
	}

	// An image to work with: uploaded as an archive when the server can
	// import, and one more tag pushed with the registry API either way.
	repo := ws + "/hello"
	if hasImport {
		archive := filepath.Join(t.TempDir(), "hello.tar")
		writeConsoleArchive(t, archive, "example.com/team/hello:1.0", 8<<20)
		step("upload page",
			chromedp.Navigate(base+"/#/upload?ws="+ws),
			chromedp.WaitReady(css(`#upload-ws option[value="`+ws+`"]`)))
		// Record every value the progress bars take, and slow the upload
		// down so that the bars have something to show on loopback.
		eval(`(function(){window.__progress={upload:[],import:[]};
			new MutationObserver(function(ms){ms.forEach(function(m){
				var bar=m.target, row=bar.closest('.progress'); if(!row) return;
				var k=row.id==='progress-upload'?'upload':'import';
				window.__progress[k].push(Number(bar.getAttribute('aria-valuenow')));});})
			.observe(document.getElementById('upload-progress'),{subtree:true,attributes:true,attributeFilter:['aria-valuenow']});
			return 'ok';})()`)
		// A file over the browser limit is refused before anything is sent
		// (a sparse file: it takes no disk space).
		big := filepath.Join(t.TempDir(), "big.tar")
		if f, err := os.Create(big); err != nil || f.Truncate(2<<30+1) != nil || f.Close() != nil {
			t.Fatalf("sparse file: %v", err)
		}
		step("refuse a file over 2 GiB",
			chromedp.SetUploadFiles(css("#upload-file"), []string{big}),
			chromedp.WaitVisible(css("#upload-too-big")),
			chromedp.Click(css("#upload-submit")),
			chromedp.WaitVisible(css("#upload-too-big")))
		if eval(`String(document.getElementById('upload-progress').hidden)`) != "true" {
			t.Error("a file over 2 GiB started an upload")
		}
		page("upload-too-big")
		consoleThrottle(t, ctx, 4<<20)
		page("upload")
		step("upload",
			chromedp.SetValue(css("#upload-ws"), ws),
			chromedp.SendKeys(css("#upload-repo"), "hello"),
			chromedp.SetUploadFiles(css("#upload-file"), []string{archive}),
			chromedp.Click(css("#upload-submit")),
			chromedp.WaitVisible(css("#progress-upload")))
		waitJS("upload under way", `(function(){var b=document.querySelector('#progress-upload .bar');var v=Number(b&&b.getAttribute('aria-valuenow'));return v>0&&v<100;})()`)
		page("upload-progress")
		step("import result", chromedp.WaitVisible(css(`#import-table tr[data-image="`+repo+`:1.0"]`)))
		consoleThrottle(t, ctx, -1)
		page("upload-done")
		var progress struct{ Upload, Import []float64 }
		if err := json.Unmarshal([]byte(eval(`JSON.stringify(window.__progress)`)), &progress); err != nil {
			t.Fatal(err)
		}
		t.Logf("console e2e: progress bar values: upload %v, import %v", progress.Upload, progress.Import)
		between := func(vs []float64) bool {
			for _, v := range vs {
				if v > 0 && v < 100 {
					return true
				}
			}
			return false
		}
		if !between(progress.Upload) {
			t.Errorf("the upload bar showed no value between 0 and 100: %v", progress.Upload)
		}
		if len(progress.Import) == 0 || progress.Import[len(progress.Import)-1] != 100 {
			t.Errorf("the import bar did not end at 100: %v", progress.Import)
		}
		if eval(`String(document.querySelector('#progress-import').classList.contains('complete'))`) != "true" {
			t.Error("the import bar is not marked complete")
		}
	} else {
		t.Log("console e2e: the server has no import API (POST /api/v1/workspaces/{workspace}/import): the upload is not tested")
	}
	cfg := []byte(`{"architecture":"arm64","os":"linux","variant":"v8","rootfs":{"type":"layers","diff_ids":[]}}`)
	layer := []byte("a layer pushed by the console test")
	cfgD, layerD := pushBlob(t, base, repo, cfg), pushBlob(t, base, repo, layer)
	if r := do(t, "PUT", base+"/v2/"+repo+"/manifests/pushed", imageManifest(cfgD, layerD, len(cfg), len(layer)), "Content-Type", ociManifest); r.status != 201 {
		t.Fatalf("push manifest: %d %s", r.status, r.body)
	}

	// The repository's tags, with platforms read through /v2/ with the session.
	step("repository page",
		chromedp.Navigate(base+"/#/repo/"+repo),
		chromedp.WaitVisible(css(`#tag-table tr[data-tag="pushed"]`)))
	waitJS("platforms", `(function(){var c=document.querySelector('#tag-table tr[data-tag="pushed"] td.platforms');return !!c&&c.textContent==='linux/arm64/v8';})()`)
	if hasImport {
		waitJS("platforms of the upload", `(function(){var c=document.querySelector('#tag-table tr[data-tag="1.0"] td.platforms');return !!c&&c.textContent==='linux/amd64';})()`)
	}
	page("repository")
	if got := eval(`document.querySelector('#tag-table tr[data-tag="pushed"] button[data-copy]').getAttribute('data-copy')`); got != "docker pull "+host+"/"+repo+":pushed" {
		t.Errorf("pull command %q, want docker pull %s/%s:pushed", got, host, repo)
	}

	// Edit the description in place, in the workspace's list.
	step("edit description",
		chromedp.Navigate(base+"/#/ws/"+ws),
		chromedp.WaitVisible(css(`#repo-table tr[data-repo="`+repo+`"]`)),
		chromedp.Click(css(`#repo-table tr[data-repo="`+repo+`"] button[data-action="edit-desc"]`)),
		chromedp.WaitVisible(css(`#repo-table tr[data-repo="`+repo+`"] .desc-input`)),
		chromedp.SendKeys(css(`#repo-table tr[data-repo="`+repo+`"] .desc-input`), "Hello from the browser"),
		chromedp.Click(css(`#repo-table tr[data-repo="`+repo+`"] form button[type=submit]`)))
	waitJS("description saved", `(function(){var d=document.querySelector('#repo-table tr[data-repo="`+repo+`"] .desc-text');return !!d&&d.textContent==='Hello from the browser';})()`)
	page("workspace-repositories")
	if r := do(t, "GET", base+"/api/v1/repositories/"+repo, nil); !strings.Contains(string(r.body), `"description":"Hello from the browser"`) {
		t.Errorf("the repository after the edit: %d %s", r.status, r.body)
	}
	step("search", chromedp.SendKeys(css("#repo-search"), "nomatch"))
	waitJS("search result", `!!document.querySelector('#repo-table td.empty')`)
	page("workspace-search")

	// Delete a tag, and restore it when the server has a trash.
	step("delete tag",
		chromedp.Navigate(base+"/#/repo/"+repo),
		chromedp.WaitVisible(css(`#tag-table tr[data-tag="pushed"] button[data-action="delete-tag"]`)),
		chromedp.Click(css(`#tag-table tr[data-tag="pushed"] button[data-action="delete-tag"]`)),
		chromedp.WaitVisible(css("dialog.modal button.danger")))
	page("delete-tag-confirm")
	step("confirm delete",
		chromedp.Click(css("dialog.modal button.danger")),
		chromedp.WaitNotPresent(css(`#tag-table tr[data-tag="pushed"]`)))
	if r := do(t, "GET", base+"/v2/"+repo+"/manifests/pushed", nil, "Accept", ociManifest); r.status != 404 {
		t.Errorf("GET the deleted tag: %d, want 404", r.status)
	}
	page("tag-deleted")
	if hasTrash {
		step("restore",
			chromedp.WaitVisible(css(`#trash-table button[data-action="restore"]`)),
			chromedp.Click(css(`#trash-table button[data-action="restore"]`)),
			chromedp.WaitVisible(css(`#tag-table tr[data-tag="pushed"]`)))
		page("tag-restored")
		if r := do(t, "GET", base+"/v2/"+repo+"/manifests/pushed", nil, "Accept", ociManifest); r.status != 200 {
			t.Errorf("GET the restored tag: %d, want 200", r.status)
		}
		// The whole image, from its page; restored from the workspace's trash.
		step("delete image",
			chromedp.Click(css("#repo-delete")),
			chromedp.WaitVisible(css("dialog.modal button.danger")),
			chromedp.Click(css("dialog.modal button.danger")),
			chromedp.WaitVisible(css(`#trash-table tr[data-trash="repository:`+repo+`"]`)),
			chromedp.WaitNotPresent(css(`#repo-table tr[data-repo="`+repo+`"]`)))
		page("image-deleted")
		step("restore image",
			chromedp.Click(css(`#trash-table tr[data-trash="repository:`+repo+`"] button[data-action="restore"]`)),
			chromedp.WaitVisible(css(`#repo-table tr[data-repo="`+repo+`"]`)))
		if r := do(t, "GET", base+"/v2/"+repo+"/manifests/pushed", nil, "Accept", ociManifest); r.status != 200 {
			t.Errorf("GET a tag of the restored image: %d, want 200", r.status)
		}
	} else {
		t.Log("console e2e: the server has no trash API (GET /api/v1/workspaces/{workspace}/trash): restore is not tested")
	}

	// Garbage collection, dry run.
	if hasGC {
		step("gc dry run",
			chromedp.Navigate(base+"/#/admin/gc"),
			chromedp.WaitVisible(css("#gc-dry")),
			chromedp.Click(css("#gc-dry")),
			chromedp.WaitVisible(css("#gc-report")))
		waitJS("gc dry run done", `(function(){var r=document.getElementById('gc-report');return !!r&&['done','failed','aborted'].indexOf(r.getAttribute('data-state'))>=0;})()`)
		if state := eval(`document.getElementById('gc-report').getAttribute('data-state')`); state != "done" {
			t.Errorf("dry run ended %q, want done", state)
		}
		step("gc history", chromedp.WaitVisible(css(`#gc-history tr[data-gc]`)))
		page("gc")
	} else {
		t.Log("console e2e: the server has no GC API (POST /api/v1/gc): the dry run is not tested")
	}

	// The push guide names this registry, the workspace and the user.
	step("push guide",
		chromedp.Navigate(base+"/#/push?ws="+ws),
		chromedp.WaitReady(css(`#push-ws option[value="`+ws+`"]`)))
	waitJS("push guide for the workspace", `document.querySelector('#guide-docker code').textContent.indexOf('`+ws+`/myapp')>=0`)
	guide := eval(`document.getElementById('push-commands').textContent`)
	for _, want := range []string{
		"docker login " + host + " -u admin",
		"docker tag myapp:latest " + host + "/" + ws + "/myapp:latest",
		"docker push " + host + "/" + ws + "/myapp:latest",
		"ctr -n default images push --user admin --plain-http " + host + "/" + ws + "/myapp:latest",
		"podman push --tls-verify=false " + host + "/" + ws + "/myapp:latest",
		"nerdctl push --insecure-registry " + host + "/" + ws + "/myapp:latest",
		"robot$default+ci",
	} {
		if !strings.Contains(guide, want) {
			t.Errorf("the push guide lacks %q", want)
		}
	}
	page("push-guide")

	// The admin pages.
	for _, p := range []struct{ name, hash, sel string }{
		{"users", "#/admin/users", `#users-table tr[data-user="admin"]`},
		{"projects", "#/admin/projects", `#projects-table tr[data-project="default"]`},
		{"project-members", "#/admin/projects/default", `#members-table tr[data-member="admin"]`},
		{"robots", "#/admin/robots?project=default", `#robot-form`},
		{"cluster", "#/admin/cluster", `#cluster-table tbody tr`},
	} {
		step(p.name, chromedp.Navigate(base+"/"+p.hash), chromedp.WaitVisible(css(p.sel)))
		page(p.name)
	}
	// A robot account: its secret is shown once.
	step("create robot",
		chromedp.Navigate(base+"/#/admin/robots?project=default"),
		chromedp.WaitReady(css(`#robot-form input[name="robot-ws"][value="`+ws+`"]`)),
		chromedp.SendKeys(css("#robot-name"), "ci"),
		chromedp.Click(css(`#robot-form input[name="robot-ws"][value="`+ws+`"]`)),
		chromedp.Click(css("#robot-submit")),
		chromedp.WaitVisible(css("#robot-secret")),
		chromedp.WaitVisible(css(`#robots-table tr[data-robot="ci"]`)))
	page("robot-created")

	// Chinese, by the switch.
	step("switch to Chinese",
		chromedp.Navigate(base+"/#/workspaces"),
		chromedp.WaitVisible(css("#ws-table")),
		chromedp.SetValue(css("#lang"), "zh-CN"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById('lang').dispatchEvent(new Event('change'))`))
	waitJS("Chinese", `document.getElementById('nav-workspaces').textContent==='工作空间'`)
	waitJS("Chinese table", `!!document.querySelector('#ws-table')`)
	page("workspaces-zh")
	step("back to English", chromedp.SetValue(css("#lang"), "en"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById('lang').dispatchEvent(new Event('change'))`))
	waitJS("English", `document.getElementById('nav-workspaces').textContent==='Workspaces'`)

	// Log out: the session is gone, for the page and for the API.
	step("log out", chromedp.Click(css("#logout")), chromedp.WaitVisible(css("#login-form")))
	page("logged-out")
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](`fetch('/api/v1/me',{credentials:'same-origin'}).then(function(r){return String(r.status);})`, chromedp.EvalAwaitPromise))
	if err != nil || v != "401" {
		t.Errorf("GET /api/v1/me after logout: %q (%v), want 401", v, err)
	}
	if got := eval(`document.cookie`); strings.Contains(got, "berth_session") {
		t.Errorf("the session cookie is readable by script: %q", got)
	}
}

// consoleShot saves a full-page screenshot as dir/name.png.
func consoleShot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	// Let transitions (toasts, bars) settle.
	_ = chromedp.Do(sctx, chromedp.Sleep(150*time.Millisecond))
	b, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), b, 0o644); err != nil {
		t.Errorf("screenshot %s: %v", name, err)
	}
}

// consoleThrottle limits the browser's upload rate to bytesPerSecond (-1: none).
func consoleThrottle(t *testing.T, ctx context.Context, bytesPerSecond float64) {
	t.Helper()
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatalf("network.enable: %v", err)
	}
	conds := []*network.Conditions{}
	if bytesPerSecond > 0 {
		conds = append(conds, &network.Conditions{UploadThroughput: bytesPerSecond, DownloadThroughput: -1})
	}
	if _, err := chromedp.Call(ctx, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{MatchedNetworkConditions: conds}); err != nil {
		t.Fatalf("throttle: %v", err)
	}
}

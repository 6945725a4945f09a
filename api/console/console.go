// Package console holds the web console's static files: one page (index.html),
// its script and style sheet, and the message catalogues of the languages it
// speaks (i18n/<lang>.json, all with the same keys). They are plain HTML,
// JavaScript and CSS, embedded in the binary and served as they are by api: there
// is no build step and nothing is fetched from elsewhere at run time.
//
// The page is a single-page application over the management API (/api/v1/), with
// hash routes; api/console.go serves it and the session it runs on.
package console

import "embed"

// Files are the console's files, by their path below this folder. They are never
// modified.
//
//go:embed index.html app.js app.css favicon.svg i18n/*.json
var Files embed.FS

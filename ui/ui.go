// Package ui holds the dashboard's files (docs/DASHBOARD.md), embedded in the
// binary so that a node serves them at /ui/ with no network access and no
// build step: plain HTML, CSS and JavaScript that read the node's own API.
package ui

import (
	"embed"
	"io/fs"
)

//go:embed static
var static embed.FS

// Files is the dashboard's files, index.html at the root.
func Files() (fs.FS, error) { return fs.Sub(static, "static") }

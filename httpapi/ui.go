package httpapi

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"
)

// The dashboard (docs/DASHBOARD.md): its files at /ui/, embedded in the
// binary (package ui) and handed over as Config.UI. They hold no data, so
// they are served to anyone, as the probes are; the page then asks the API,
// with the credentials the user gives it, for everything it shows.

// uiCSP keeps the page to its own files and its own node: no inline script
// or style (a key or value shown on the page can never run), no frames (no
// clickjacking of its edit and delete buttons).
const uiCSP = "default-src 'self'; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// uiFile is a file of the dashboard, read once and kept with the headers
// every answer needs, so that serving it is a map lookup.
type uiFile struct {
	body        []byte
	contentType string
	etag        string
}

// uiFiles reads the dashboard's files on first use. A file that cannot be
// read (the embedded ones always can) is answered 500 when asked for.
type uiFiles struct {
	fsys  fs.FS
	once  sync.Once
	files map[string]*uiFile
	err   error
	// modTime is when the node started: the files cannot change while it
	// runs.
	modTime time.Time
}

func newUIFiles(fsys fs.FS) *uiFiles {
	if fsys == nil {
		return nil
	}
	return &uiFiles{fsys: fsys, modTime: time.Now()}
}

func (u *uiFiles) load() {
	u.files = map[string]*uiFile{}
	u.err = fs.WalkDir(u.fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(u.fsys, name)
		if err != nil {
			return err
		}
		ctype := uiContentTypes[path.Ext(name)]
		if ctype == "" {
			ctype = mime.TypeByExtension(path.Ext(name))
		}
		if ctype == "" {
			ctype = "application/octet-stream"
		}
		sum := sha256.Sum256(body)
		u.files[name] = &uiFile{body: body, contentType: ctype,
			etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`}
		return nil
	})
}

// uiContentTypes are the dashboard's types, set here rather than taken
// from the host's mime database, which differs between machines (and
// names JavaScript text/plain on some).
var uiContentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
}

// uiPath matches ui and ui/...; the rest is "" or starts with "/".
func uiPath(raw string) (string, bool) {
	rest, ok := strings.CutPrefix(raw, "ui")
	return rest, ok && (rest == "" || rest[0] == '/')
}

// serveUI serves one of the dashboard's files: /ui/ is index.html. Every
// answer is revalidated (Cache-Control: no-cache, with an ETag of the
// content), so a browser never shows the page of an older binary beside
// the API of a newer one, and a reload costs a 304.
func (s *Server) serveUI(w http.ResponseWriter, r *http.Request, rest string) error {
	if s.ui == nil {
		return &Error{Status: http.StatusNotFound, Code: "not_found",
			Message: "the dashboard is off on this node (--disable-ui)"}
	}
	if rest == "" {
		// Relative links in the page need the trailing slash. The
		// redirect is relative too, so that it holds behind a proxy
		// that serves the node under a path of its own.
		w.Header().Set("Location", "ui/")
		w.WriteHeader(http.StatusMovedPermanently)
		return nil
	}
	name := strings.TrimPrefix(rest, "/")
	if name == "" {
		name = "index.html"
	}
	s.ui.once.Do(s.ui.load)
	if s.ui.err != nil {
		return fmt.Errorf("reading the dashboard's files: %w", s.ui.err)
	}
	f, ok := s.ui.files[name]
	if !ok {
		return &Error{Status: http.StatusNotFound, Code: "not_found",
			Message: fmt.Sprintf("%s is not a file of the dashboard; open /ui/", r.URL.EscapedPath())}
	}
	h := w.Header()
	h.Set("Content-Type", f.contentType)
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", f.etag)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", uiCSP)
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	// ServeContent answers If-None-Match with 304, ranges, and HEAD.
	http.ServeContent(w, r, name, s.ui.modTime, bytes.NewReader(f.body))
	return nil
}

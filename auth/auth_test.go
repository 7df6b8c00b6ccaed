package auth

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// hash makes a cheap bcrypt hash: the tests check the logic, not the cost.
func hash(t *testing.T, secret string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(secret), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func writeFile(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func request(header string) *http.Request {
	r, _ := http.NewRequest(http.MethodGet, "http://x/k", nil)
	if header != "" {
		r.Header.Set("Authorization", header)
	}
	return r
}

func basic(user, password string) string {
	r := request("")
	r.SetBasicAuth(user, password)
	return r.Header.Get("Authorization")
}

func TestAuthenticate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "auth.json")
	writeFile(t, path, map[string]any{
		"users": map[string]any{
			"root":   map[string]any{"password_hash": hash(t, "rootpw"), "admin": true},
			"reader": map[string]any{"password_hash": hash(t, "readpw"), "read": []string{""}},
		},
		"tokens": map[string]any{
			"ci": map[string]any{"token_hash": hash(t, "s3cret"), "read": []string{"app/"}, "write": []string{"app/"}},
		},
	})
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		header string
		want   string // identity, or "" for an error
		err    error
	}{
		{"", "", ErrNoCredentials},
		{basic("root", "rootpw"), "user root", nil},
		{basic("root", "rootpw"), "user root", nil}, // remembered
		{basic("root", "wrong"), "", ErrBadCredentials},
		{basic("nobody", "rootpw"), "", ErrBadCredentials},
		{basic("reader", "readpw"), "user reader", nil},
		{"Bearer ci.s3cret", "token ci", nil},
		{"bearer ci.s3cret", "token ci", nil}, // schemes are case-insensitive
		{"Bearer ci.wrong", "", ErrBadCredentials},
		{"Bearer ci", "", ErrBadCredentials},
		{"Bearer root.rootpw", "", ErrBadCredentials},  // a user is not a token
		{basic("ci", "s3cret"), "", ErrBadCredentials}, // nor a token a user
		{"Digest x", "", ErrBadCredentials},
		{"Basic !!!", "", ErrBadCredentials},
	}
	for _, c := range cases {
		id, err := s.Authenticate(context.Background(), request(c.header))
		switch {
		case c.err != nil && !errors.Is(err, c.err):
			t.Errorf("%q: err %v, want %v", c.header, err, c.err)
		case c.err == nil && (err != nil || id.String() != c.want):
			t.Errorf("%q: %v, %v; want %s", c.header, id, err, c.want)
		}
		if err != nil && (strings.Contains(err.Error(), "rootpw") || strings.Contains(err.Error(), "s3cret")) {
			t.Errorf("%q: the error shows the secret: %v", c.header, err)
		}
	}
}

func TestPermissions(t *testing.T) {
	id := &Identity{Name: "app", Kind: KindUser, read: []string{"app/", "shared/x", "app/sub/"}, write: []string{"app/tmp/"}}
	checks := []struct {
		name string
		got  bool
		want bool
	}{
		{"read app/a", id.CanRead([]byte("app/a")), true},
		{"read other", id.CanRead([]byte("other")), false},
		{"read shared/xy", id.CanRead([]byte("shared/xy")), true},
		{"read shared/", id.CanRead([]byte("shared/")), false},
		{"write app/a", id.CanWrite([]byte("app/a")), false},
		{"write app/tmp/1", id.CanWrite([]byte("app/tmp/1")), true},
		{"read all app/", id.CanReadAll([]byte("app/")), true},
		{"read all app", id.CanReadAll([]byte("app")), false}, // "apple" too
		{"read all \"\"", id.CanReadAll(nil), false},
		{"write all app/tmp/", id.CanWriteAll([]byte("app/tmp/")), true},
		{"write all app/", id.CanWriteAll([]byte("app/")), false},
		{"admin", id.Admin(), false},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.name, c.got, c.want)
		}
	}
	if got := strings.Join(id.ReadPrefixes(), ","); got != "app/,shared/x" {
		t.Errorf("ReadPrefixes = %s, want app/,shared/x", got)
	}
	root := &Identity{Name: "root", Kind: KindUser, admin: true}
	if !root.CanReadAll(nil) || !root.CanWriteAll(nil) {
		t.Error("admin may not do everything")
	}
}

func TestLoadRefuses(t *testing.T) {
	good := hash(t, "pw")
	cases := map[string]string{
		"not json":           `{`,
		"unknown field":      `{"users": {"a": {"password_hash": "` + good + `", "raed": [""]}}}`,
		"empty":              `{}`,
		"no hash":            `{"users": {"a": {"read": [""]}}}`,
		"not bcrypt":         `{"users": {"a": {"password_hash": "pw"}}}`,
		"token hash on user": `{"users": {"a": {"token_hash": "` + good + `"}}}`,
		"colon in user":      `{"users": {"a:b": {"password_hash": "` + good + `"}}}`,
		"dot in token":       `{"tokens": {"a.b": {"token_hash": "` + good + `"}}}`,
		"trailing data":      `{"users": {"a": {"password_hash": "` + good + `"}}} {}`,
	}
	for name, body := range cases {
		path := filepath.Join(t.TempDir(), "auth.json")
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(path); !errors.Is(err, ErrInvalidFile) {
			t.Errorf("%s: err %v, want ErrInvalidFile", name, err)
		}
	}
}

// TestReload checks that a reload takes a new file, forgets the secrets it
// remembered, and keeps the old file when the new one is bad.
func TestReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "auth.json")
	writeFile(t, path, map[string]any{"users": map[string]any{"a": map[string]any{"password_hash": hash(t, "old")}}})
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := s.Authenticate(ctx, request(basic("a", "old"))); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, map[string]any{"users": map[string]any{"a": map[string]any{"password_hash": hash(t, "new")}}})
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, request(basic("a", "old"))); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("the old password after a reload: %v, want ErrBadCredentials", err)
	}
	if _, err := s.Authenticate(ctx, request(basic("a", "new"))); err != nil {
		t.Errorf("the new password: %v", err)
	}
	if err := os.WriteFile(path, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(); !errors.Is(err, ErrInvalidFile) {
		t.Errorf("reload of a bad file: %v, want ErrInvalidFile", err)
	}
	if _, err := s.Authenticate(ctx, request(basic("a", "new"))); err != nil {
		t.Errorf("after a bad reload the file in force changed: %v", err)
	}
}

func TestNewTokenAndHash(t *testing.T) {
	token, h, err := NewToken("deploy", MinCost)
	if err != nil {
		t.Fatal(err)
	}
	name, secret, ok := strings.Cut(token, ".")
	if !ok || name != "deploy" || len(secret) < 40 {
		t.Fatalf("token %q", token)
	}
	if bcrypt.CompareHashAndPassword([]byte(h), []byte(secret)) != nil {
		t.Error("the hash does not match the token's secret")
	}
	if _, _, err := NewToken("a.b", MinCost); err == nil {
		t.Error("a token name with a dot was accepted")
	}
	if _, err := HashPassword("pw", 3); err == nil {
		t.Error("a cost below bcrypt's least was accepted")
	}
	if _, err := HashPassword(strings.Repeat("x", 73), MinCost); err == nil {
		t.Error("a password bcrypt would cut was accepted")
	}
}

package client_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/raftkv/raftkv/auth"
	"github.com/raftkv/raftkv/client"
	"github.com/raftkv/raftkv/internal/testcluster"
)

// authStore writes an auth file with a user app (read and write under
// app/) and a token ci (read under app/) and loads it.
func authStore(t *testing.T) (store *auth.Store, token string) {
	t.Helper()
	pw, err := bcrypt.GenerateFromPassword([]byte("app-pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	token, tokenHash, err := auth.NewToken("ci", auth.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]any{
		"users":  map[string]any{"app": map[string]any{"password_hash": string(pw), "read": []string{"app/"}, "write": []string{"app/"}}},
		"tokens": map[string]any{"ci": map[string]any{"token_hash": tokenHash, "read": []string{"app/"}}},
	})
	path := filepath.Join(t.TempDir(), "auth.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	store, err = auth.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return store, token
}

// TestCredentials checks that the client sends its credentials with every
// request, watches included, and that a 401 or 403 is returned as such,
// not retried as an unavailable cluster.
func TestCredentials(t *testing.T) {
	store, token := authStore(t)
	c, leader := startCluster(t, testcluster.Config{Auth: store})
	endpoints := urls(c, leader%3+1, leader)
	ctx := testContext(t)

	app := newClient(t, endpoints, client.WithBasicAuth("app", "app-pw"))
	if _, err := app.Put(ctx, []byte("app/k"), []byte("v"), client.Condition{}); err != nil {
		t.Fatalf("put as app: %v", err)
	}
	w, err := app.Watch(ctx, []byte("app/"), client.WatchOptions{Prefix: true})
	if err != nil {
		t.Fatalf("watch as app: %v", err)
	}
	defer w.Close()
	if _, err := app.Put(ctx, []byte("app/k"), []byte("v2"), client.Condition{}); err != nil {
		t.Fatal(err)
	}
	if ev, err := w.Next(); err != nil || string(ev.Value) != "v2" {
		t.Fatalf("app's watch: %+v, %v", ev, err)
	}

	ci := newClient(t, endpoints, client.WithToken(token))
	if kv, err := ci.Get(ctx, []byte("app/k"), ""); err != nil || string(kv.Value) != "v2" {
		t.Fatalf("get with the token: %+v, %v", kv, err)
	}
	_, err = ci.Put(ctx, []byte("app/k"), []byte("v3"), client.Condition{})
	var apiErr *client.APIError
	if !errors.Is(err, client.ErrPermissionDenied) || errors.Is(err, client.ErrUnavailable) || !errors.As(err, &apiErr) || apiErr.Code != "permission_denied" {
		t.Errorf("put with a read-only token: %v, want 403 permission_denied", err)
	}
	if _, err := ci.Watch(ctx, []byte(""), client.WatchOptions{Prefix: true}); !errors.Is(err, client.ErrPermissionDenied) {
		t.Errorf("watch of every key with a token for app/: %v, want permission denied", err)
	}

	for name, cl := range map[string]*client.Client{
		"no credentials": newClient(t, endpoints),
		"wrong password": newClient(t, endpoints, client.WithBasicAuth("app", "nope")),
		"unknown token":  newClient(t, endpoints, client.WithToken("ci.nope")),
	} {
		_, err := cl.Get(ctx, []byte("app/k"), "")
		if !errors.Is(err, client.ErrUnauthenticated) || errors.Is(err, client.ErrUnavailable) {
			t.Errorf("%s: %v, want 401", name, err)
		}
	}
	if kv, err := app.Get(ctx, []byte("app/k"), ""); err != nil || string(kv.Value) != "v2" {
		t.Errorf("app/k after the refused write: %+v, %v", kv, err)
	}
}

package httpapi_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/raftkv/raftkv/auth"
)

// testAuthStore loads an auth file with one admin, root with password
// root-pw, hashed at bcrypt's least cost.
func testAuthStore(t *testing.T) *auth.Store {
	t.Helper()
	return authStoreWithPassword(t, "root-pw", map[string]any{"root": map[string]any{"admin": true}})
}

func basicCredentials(user, password string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
}

// authStoreWith loads an auth file of users whose password is "pw" (hashed
// at bcrypt's least cost), each with the permissions given.
func authStoreWith(t *testing.T, users map[string]any) *auth.Store {
	t.Helper()
	return authStoreWithPassword(t, "pw", users)
}

func authStoreWithPassword(t *testing.T, password string, users map[string]any) *auth.Store {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		u.(map[string]any)["password_hash"] = string(h)
	}
	b, _ := json.Marshal(map[string]any{"users": users})
	path := filepath.Join(t.TempDir(), "auth.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	store, err := auth.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return store
}

// as is the Authorization header of user with password "pw", nil for "".
func as(user string) http.Header {
	if user == "" {
		return nil
	}
	return http.Header{"Authorization": {"Basic " + basicCredentials(user, "pw")}}
}

package client_test

import (
	"strings"
	"testing"

	"github.com/raftkv/raftkv/client"
)

// TestAPIErrorIsOneLine checks the text of server answers: raftkv's own with
// its status and code, and a foreign body (a proxy's HTML page) cut to its
// first line, so that the CLI's error stays one line.
func TestAPIErrorIsOneLine(t *testing.T) {
	page := "<!DOCTYPE HTML>\n<html>\n<title>Error response</title>\n</html>\n"
	for _, tc := range []struct {
		err  client.APIError
		want string
	}{
		{client.APIError{Status: 404, Code: "key_not_found", Message: "key not found"}, "key not found (404 key_not_found)"},
		{client.APIError{Status: 404, Message: page}, "404 Not Found: <!DOCTYPE HTML> ..."},
		{client.APIError{Status: 502, Message: "bad gateway\n"}, "502 Bad Gateway: bad gateway"},
		{client.APIError{Status: 502, Message: strings.Repeat("x", 500)}, "502 Bad Gateway: " + strings.Repeat("x", 200) + " ..."},
		{client.APIError{Status: 500}, "500 Internal Server Error"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.err, got, tc.want)
		}
	}
}

package wire

// Self is who the caller is and what it may do: the answer to
// GET /v1/auth/self (docs/API.md), which the dashboard reads to show only
// what the user may do.
type Self struct {
	// AccessControl is false on a node without --auth-file: then anyone
	// may do anything, and Admin is true.
	AccessControl bool `json:"access_control"`
	// Kind is "user" or "token"; empty without access control.
	Kind  string   `json:"kind"`
	Name  string   `json:"name"`
	Admin bool     `json:"admin"`
	Read  []string `json:"read"`
	Write []string `json:"write"`
}

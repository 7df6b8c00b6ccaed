package listener

import "errors"

// Errors of TLS handshakes.
var (
	// ErrCertNotAllowed means a certificate the CA signed whose common name
	// or hosts are not among the allowed ones.
	ErrCertNotAllowed = errors.New("the certificate is signed by a trusted CA but its common name or hosts are not allowed (--peer-cert-allowed-cn, --peer-cert-allowed-hostname)")
)

package listener

import "errors"

// Errors of TLS files and handshakes. Their texts reach users (a node that
// refuses to start prints them, a refused reload logs them), so they name
// no package.
var (
	// ErrCertNotAllowed means a certificate the CA signed whose common name
	// or hosts are not among the allowed ones.
	ErrCertNotAllowed = errors.New("the certificate is signed by a trusted CA but its common name or hosts are not allowed (--peer-cert-allowed-cn, --peer-cert-allowed-hostname)")
	// ErrNoPEMCertificate means a CA bundle without a single certificate:
	// trusting it would fail every handshake later, far from the cause.
	ErrNoPEMCertificate = errors.New("holds no PEM certificate")
	// ErrClientAuthWithoutCA means client certificates are required but no
	// CA bundle says who signs them (TLSFiles.Check names the flags).
	ErrClientAuthWithoutCA = errors.New("client certificates are required but no trusted CA file is given")
	// ErrIncompletePEM means a PEM file that ends inside a block, most
	// likely one still being written: loading what precedes the cut would
	// silently drop the rest of a chain or bundle.
	ErrIncompletePEM = errors.New("ends in an incomplete PEM block (is it still being written?)")
)

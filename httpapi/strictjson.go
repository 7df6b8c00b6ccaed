package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"unicode"
)

// checkNames refuses what encoding/json lets through and a client may not
// mean: a field named twice in one object (the decoder keeps the last, so
// {"to": 99, "to": 1} would move leadership to 1), and a field whose name
// matches only when case is ignored ("Peer_URLs" for peer_urls). It walks
// body's tokens beside the type decoded into, t, so that the names of
// nested objects are checked against their own fields. The body must be
// valid JSON for its objects to be walked; errors of syntax and types are
// left to the decoder, which words them in the API's terms.
func checkNames(body []byte, t reflect.Type) error {
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	err := walkValue(d, t)
	var problem *nameProblem
	if errors.As(err, &problem) {
		return problem
	}
	return nil // the decoder reports anything else
}

// nameProblem is a field name checkNames refuses.
type nameProblem struct{ msg string }

func (p *nameProblem) Error() string { return p.msg }

// walkValue reads one JSON value from d; t is the Go type it decodes into
// (nil when unknown: an interface, or a field the decoder will refuse).
func walkValue(d *json.Decoder, t reflect.Type) error {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	tok, err := d.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		return walkObject(d, t)
	case json.Delim('['):
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for d.More() {
			if err := walkValue(d, elem); err != nil {
				return err
			}
		}
		_, err := d.Token() // ']'
		return err
	}
	return nil
}

// walkObject reads the members of an object whose '{' was read.
func walkObject(d *json.Decoder, t reflect.Type) error {
	var fields map[string]reflect.Type
	if t != nil && t.Kind() == reflect.Struct {
		fields = jsonFields(t)
	}
	seen := map[string]string{} // folded name → name as sent
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			return err
		}
		name, _ := tok.(string)
		folded := foldName(name)
		if prev, dup := seen[folded]; dup {
			if prev == name {
				return &nameProblem{fmt.Sprintf("field %q appears twice", name)}
			}
			return &nameProblem{fmt.Sprintf("fields %q and %q are the same field named twice", prev, name)}
		}
		seen[folded] = name
		var ft reflect.Type
		if t != nil && t.Kind() == reflect.Map {
			ft = t.Elem()
		}
		if fields != nil {
			var ok bool
			if ft, ok = fields[name]; !ok {
				for want := range fields {
					if strings.EqualFold(want, name) {
						return &nameProblem{fmt.Sprintf("unknown field %q (names are case-sensitive: use %q)", name, want)}
					}
				}
			}
		}
		if err := walkValue(d, ft); err != nil {
			return err
		}
	}
	_, err := d.Token() // '}'
	return err
}

// foldName maps every name that strings.EqualFold (and so encoding/json)
// takes for name to one string: each rune becomes the smallest rune of its
// case-folding orbit ("K", "k" and the Kelvin sign all become "K").
func foldName(name string) string {
	var b strings.Builder
	for _, r := range name {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		b.WriteRune(least)
	}
	return b.String()
}

// jsonFields maps the JSON names of struct type t's fields to their types,
// as encoding/json names them: the tag's name, else the Go name; "-" and
// unexported fields are not decoded. Request types embed nothing, so
// embedded structs are not flattened.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := make(map[string]reflect.Type, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

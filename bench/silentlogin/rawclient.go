package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// rawClient is the load generator's side of one simulated browser: one keep-alive HTTP/1.1
// connection on which it writes the two requests of a silent login from prepared text and
// reads only what the round trip needs (the status, the authorization response's Location,
// the token response's body). It exists because the load generator runs on the cores the
// server is measured on: net/http's client costs about a third of a millisecond per silent
// login, a third of an RS256 signature, and this costs a small fraction of that. The first
// round trip of each backend still goes through net/http and is checked in full
// (checkFirstLogin); every later one is checked for a redirect with a code for its state and a
// 200 with an ID token.
type rawClient struct {
	addr string
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	// authorize is the request up to the state's value; authorizeRest completes it.
	authorize, authorizeRest string
	// tokenHead is the token request's header up to Content-Length; tokenForm its body up
	// to the code's value, which ends it.
	tokenHead, tokenForm string
	body                 []byte
}

func newRawClient(issuer, cookie string) (*rawClient, error) {
	u, err := url.Parse(issuer)
	if err != nil {
		return nil, fmt.Errorf("parse issuer: %w", err)
	}
	// One PKCE verifier per browser: the server keeps no record of challenges, so one per
	// login would cost it nothing more.
	verifier := verifierFor(cookie)
	full := authorizeURL(issuer, "STATE", "none", pkceChallenge(verifier))
	path := strings.TrimPrefix(full, issuer)
	before, after, ok := strings.Cut(path, "state=STATE")
	if !ok {
		return nil, errors.New("build the authorize request: no state parameter")
	}
	// nonce=n-STATE comes before or after state=; the state value alone varies per login,
	// so the nonce stays that of the template, which the server only copies.
	c := &rawClient{
		addr:          u.Host,
		authorize:     "GET " + before + "state=",
		authorizeRest: after + " HTTP/1.1\r\nHost: " + u.Host + "\r\nCookie: " + sessionName + "=" + cookie + "\r\n\r\n",
		tokenHead: "POST /token HTTP/1.1\r\nHost: " + u.Host + "\r\nAuthorization: Basic " +
			base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(clientID)+":"+url.QueryEscape(clientSecret))) +
			"\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ",
		tokenForm: "grant_type=authorization_code&redirect_uri=" + url.QueryEscape(redirectURI) + "&code_verifier=" + verifier + "&code=",
	}
	return c, nil
}

func (c *rawClient) dial() error {
	conn, err := net.DialTimeout("tcp", c.addr, 5*time.Second)
	if err != nil {
		return err
	}
	c.conn, c.r, c.w = conn, bufio.NewReaderSize(conn, 8192), bufio.NewWriterSize(conn, 4096)
	return nil
}

func (c *rawClient) close() {
	if c.conn != nil {
		_ = c.conn.Close()
		c.conn = nil
	}
}

// silentLogin runs one round trip; on any error the connection is dropped and the next
// round trip dials again.
func (c *rawClient) silentLogin(state string) error {
	if c.conn == nil {
		if err := c.dial(); err != nil {
			return fmt.Errorf("connect: %w", err)
		}
	}
	err := c.roundTrip(state)
	if err != nil {
		c.close()
	}
	return err
}

func (c *rawClient) roundTrip(state string) error {
	_ = c.conn.SetDeadline(time.Now().Add(10 * time.Second))
	if err := c.send(c.authorize, state, c.authorizeRest); err != nil {
		return fmt.Errorf("authorize: %w", err)
	}
	status, location, err := c.readResponse()
	if err != nil {
		return fmt.Errorf("authorize: %w", err)
	}
	if status != 302 && status != 303 {
		return fmt.Errorf("authorize: status %d, want a redirect", status)
	}
	code, gotState := queryValue(location, "code"), queryValue(location, "state")
	if code == "" || gotState != state {
		return fmt.Errorf("authorize: no code for state %s in %q", state, location)
	}

	if err := c.send(c.tokenHead, strconv.Itoa(len(c.tokenForm)+len(code)), "\r\n\r\n", c.tokenForm, code); err != nil {
		return fmt.Errorf("token: %w", err)
	}
	status, _, err = c.readResponse()
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	if status != 200 || !bytes.Contains(c.body, []byte(`"id_token":"ey`)) {
		return fmt.Errorf("token: status %d, no ID token: %.200s", status, c.body)
	}
	return nil
}

// send writes one request from its parts; a bufio.Writer keeps its first error for Flush.
func (c *rawClient) send(parts ...string) error {
	for _, p := range parts {
		_, _ = c.w.WriteString(p)
	}
	return c.w.Flush()
}

// queryValue returns a parameter of a URL's query without decoding it: the server's codes
// and the load generator's states are URL-safe.
func queryValue(rawURL, name string) string {
	_, q, _ := strings.Cut(rawURL, "?")
	for part := range strings.SplitSeq(q, "&") {
		if v, ok := strings.CutPrefix(part, name+"="); ok {
			return v
		}
	}
	return ""
}

// readResponse reads one response: its status, its Location header, and its body into
// c.body (Content-Length or chunked).
func (c *rawClient) readResponse() (status int, location string, err error) {
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		return 0, "", err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
		return 0, "", fmt.Errorf("bad status line %q", line)
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, "", fmt.Errorf("bad status line %q", line)
	}
	length, chunked := -1, false
	for {
		line, err := c.r.ReadSlice('\n')
		if err != nil {
			return 0, "", err
		}
		h := bytes.TrimRight(line, "\r\n")
		if len(h) == 0 {
			break
		}
		name, value, _ := bytes.Cut(h, []byte(":"))
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Location")):
			location = string(value)
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil {
				return 0, "", fmt.Errorf("bad Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		}
	}
	c.body = c.body[:0]
	switch {
	case chunked:
		err = c.readChunked()
	case length >= 0:
		c.body = growTo(c.body, length)
		_, err = io.ReadFull(c.r, c.body)
	default:
		err = errors.New("response without Content-Length or chunked body")
	}
	return status, location, err
}

func (c *rawClient) readChunked() error {
	for {
		line, err := c.r.ReadSlice('\n')
		if err != nil {
			return err
		}
		size, err := strconv.ParseInt(string(bytes.TrimRight(line, "\r\n")), 16, 32)
		if err != nil {
			return fmt.Errorf("bad chunk size %q", line)
		}
		if size > 0 {
			n := len(c.body)
			c.body = growTo(c.body, n+int(size))
			if _, err := io.ReadFull(c.r, c.body[n:]); err != nil {
				return err
			}
		}
		if _, err := c.r.Discard(2); err != nil { // CRLF after the chunk
			return err
		}
		if size == 0 {
			return nil
		}
	}
}

func growTo(b []byte, n int) []byte {
	if cap(b) < n {
		return append(b[:cap(b)], make([]byte, n-cap(b))...)[:n]
	}
	return b[:n]
}

package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"mime"
	"net"
	"net/smtp"
	"strconv"
	"strings"
	"time"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/connector"
)

const (
	// mailTimeout bounds one whole SMTP exchange, from dialling to QUIT.
	mailTimeout = 30 * time.Second
	// maxPendingMail bounds the messages being looked up or sent at once: a flood of reset
	// requests beyond it is dropped (and logged) rather than queued without bound.
	maxPendingMail = 8
)

// mail is one plain-text message to one recipient.
type mail struct {
	to, subject, body string
}

// sendMail delivers m through the configured SMTP server: STARTTLS (required, never
// skipped when the server does not offer it), implicit TLS, or clear text to a loopback
// host only (config validation refuses anything else).
func sendMail(ctx context.Context, cfg *config.Email, m mail, now time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, mailTimeout)
	defer cancel()
	addr := net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port))
	tlsConfig, err := connector.TLSConfig(cfg.RootCA)
	if err != nil {
		return fmt.Errorf("trust email.rootCA: %w", err)
	}
	tlsConfig.ServerName = cfg.Host
	var conn net.Conn
	if cfg.Security == config.EmailTLS {
		conn, err = (&tls.Dialer{Config: tlsConfig}).DialContext(ctx, "tcp", addr)
	} else {
		conn, err = (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return fmt.Errorf("connect to SMTP server %s: %w", addr, err)
	}
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	c, err := smtp.NewClient(conn, cfg.Host)
	if err != nil {
		_ = conn.Close()
		return fmt.Errorf("greet SMTP server %s: %w", addr, err)
	}
	defer func() { _ = c.Close() }()
	if cfg.Security == config.EmailSTARTTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return fmt.Errorf("SMTP server %s does not offer STARTTLS", addr)
		}
		if err := c.StartTLS(tlsConfig); err != nil {
			return fmt.Errorf("STARTTLS with %s: %w", addr, err)
		}
	}
	if cfg.Username != "" {
		// PlainAuth itself refuses to send the password without TLS except to localhost.
		if err := c.Auth(smtp.PlainAuth("", cfg.Username, cfg.Password, cfg.Host)); err != nil {
			return fmt.Errorf("authenticate to %s: %w", addr, err)
		}
	}
	// net/smtp refuses a CR or LF in either address, so neither can inject a command.
	if err := c.Mail(cfg.From); err != nil { //nolint:gosec // G707: see above
		return fmt.Errorf("SMTP MAIL FROM: %w", err)
	}
	if err := c.Rcpt(m.to); err != nil {
		return fmt.Errorf("SMTP RCPT TO: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("SMTP DATA: %w", err)
	}
	if _, err := w.Write(formatMail(cfg.From, m, now)); err != nil {
		return fmt.Errorf("write message: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("end message: %w", err)
	}
	return c.Quit()
}

// formatMail renders the message with CRLF line ends. Addresses reach it validated (no CR
// or LF), and the subject is encoded, so no value can add a header.
func formatMail(from string, m mail, now time.Time) []byte {
	var b strings.Builder
	header := func(name, value string) { b.WriteString(name + ": " + value + "\r\n") }
	header("From", from)
	header("To", m.to)
	header("Subject", mime.QEncoding.Encode("utf-8", m.subject))
	header("Date", now.UTC().Format(time.RFC1123Z))
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "8bit")
	b.WriteString("\r\n")
	b.WriteString(strings.ReplaceAll(m.body, "\n", "\r\n"))
	return []byte(b.String())
}

// validMailAddress accepts the addresses mail is sent to: one addr-spec without display
// name, whitespace or control characters, at most 254 bytes.
func validMailAddress(s string) bool {
	if len(s) > 254 || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '<' || r == '>' || r == ',' }) {
		return false
	}
	local, domain, ok := strings.Cut(s, "@")
	return ok && local != "" && domain != "" && !strings.Contains(domain, "@")
}

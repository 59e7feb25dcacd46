// Package github is the connector of GitHub (and GitHub Enterprise Server): the OAuth2 web
// flow, then the user, their verified primary email and their organization and team
// memberships from GitHub's REST API.
package github

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/oauth2"

	"github.com/hallpass/hallpass/internal/config"
	"github.com/hallpass/hallpass/internal/connector"
)

// GitHub.com's web and API hosts; a GitHub Enterprise Server serves both from its base URL.
const (
	publicWebURL = "https://github.com"
	publicAPIURL = "https://api.github.com"
	// maxPages bounds the pagination of org and team lists (100 per page).
	maxPages = 10
	// maxBody bounds every API answer read.
	maxBody = 4 << 20
)

// Connector is one GitHub OAuth app.
type Connector struct {
	cfg    config.GitHubConnection
	oauth  oauth2.Config
	client *http.Client
	webURL string
	apiURL string
}

var (
	_ connector.CallbackConnector = (*Connector)(nil)
	_ connector.Origins           = (*Connector)(nil)
)

// Open builds the connector; it reaches GitHub only at login.
func Open(cfg config.GitHubConnection, opts connector.Options) (*Connector, error) {
	if cfg.ClientID == "" || cfg.ClientSecret == "" {
		return nil, errors.New("client ID and client secret are required")
	}
	web, api := publicWebURL, publicAPIURL
	if cfg.BaseURL != "" {
		u, err := url.Parse(cfg.BaseURL)
		if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			return nil, fmt.Errorf("baseURL %q is not an absolute URL", cfg.BaseURL)
		}
		web = strings.TrimSuffix(cfg.BaseURL, "/")
		api = web + "/api/v3"
	}
	client, err := connector.HTTPClient(opts, "")
	if err != nil {
		return nil, err
	}
	// read:org lets the API list private memberships, which the restriction must see.
	scopes := []string{"read:user", "user:email"}
	if len(cfg.Orgs) > 0 {
		scopes = append(scopes, "read:org")
	}
	return &Connector{
		cfg: cfg, client: client, webURL: web, apiURL: api,
		oauth: oauth2.Config{
			ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, RedirectURL: opts.CallbackURL, Scopes: scopes,
			Endpoint: oauth2.Endpoint{AuthURL: web + "/login/oauth/authorize", TokenURL: web + "/login/oauth/access_token", AuthStyle: oauth2.AuthStyleInParams},
		},
	}, nil
}

// LoginOrigins is GitHub's web origin.
func (c *Connector) LoginOrigins() []string {
	u, _ := url.Parse(c.webURL)
	return []string{u.Scheme + "://" + u.Host}
}

// LoginURL starts the web flow with PKCE; private is the verifier.
func (c *Connector) LoginURL(_ context.Context, state string) (string, []byte, error) {
	v := oauth2.GenerateVerifier()
	return c.oauth.AuthCodeURL(state, oauth2.S256ChallengeOption(v)), []byte(v), nil
}

// HandleCallback redeems the code and reads the user. GitHub offers no end-session
// endpoint, so there is nothing to keep for federated logout.
func (c *Connector) HandleCallback(ctx context.Context, r *http.Request, private []byte) (connector.Identity, []byte, error) {
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		return connector.Identity{}, nil, connector.Errorf(nil, "GitHub did not sign you in (%s).", connector.ShortCode(e))
	}
	if q.Get("code") == "" {
		return connector.Identity{}, nil, connector.Errorf(nil, "GitHub sent no authorization code.")
	}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, c.client)
	tok, err := c.oauth.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(string(private)))
	if err != nil {
		return connector.Identity{}, nil, connector.Errorf(err, "GitHub did not accept the authorization code.")
	}
	api := &apiClient{c: c, ctx: ctx, token: tok.AccessToken}
	var user struct {
		ID    int64  `json:"id"`
		Login string `json:"login"`
		Name  string `json:"name"`
	}
	if err := api.get("/user", &user); err != nil {
		return connector.Identity{}, nil, err
	}
	if user.ID == 0 || user.Login == "" {
		return connector.Identity{}, nil, errors.New("read GitHub user: no id or login")
	}
	id := connector.Identity{
		// The numeric ID, not the login: a login can be renamed and then taken by someone else.
		UserID:   strconv.FormatInt(user.ID, 10),
		Username: user.Login,
		Name:     cmp.Or(user.Name, user.Login),
	}
	var emails []struct {
		Email    string `json:"email"`
		Primary  bool   `json:"primary"`
		Verified bool   `json:"verified"`
	}
	if err := api.get("/user/emails", &emails); err != nil {
		return connector.Identity{}, nil, err
	}
	for _, e := range emails {
		// Only a verified primary address: an unverified one could be anyone's.
		if e.Primary && e.Verified {
			id.Email, id.EmailVerified = e.Email, true
		}
	}
	if len(c.cfg.Orgs) > 0 {
		if id.Groups, err = c.memberships(api); err != nil {
			return connector.Identity{}, nil, err
		}
	}
	return id, nil, nil
}

// memberships enforces the org/team restriction and returns the user's groups among the
// configured orgs: "org" for each, and "org:team" for each team in it.
func (c *Connector) memberships(api *apiClient) ([]string, error) {
	var orgs []struct {
		Login string `json:"login"`
	}
	if err := api.list("/user/orgs", &orgs); err != nil {
		return nil, err
	}
	var teams []struct {
		Slug string `json:"slug"`
		Org  struct {
			Login string `json:"login"`
		} `json:"organization"`
	}
	if err := api.list("/user/teams", &teams); err != nil {
		return nil, err
	}
	var groups []string
	allowed := false
	for _, want := range c.cfg.Orgs {
		member := slices.ContainsFunc(orgs, func(o struct {
			Login string `json:"login"`
		}) bool {
			return strings.EqualFold(o.Login, want.Name)
		})
		if !member {
			continue
		}
		groups = append(groups, want.Name)
		inTeam := len(want.Teams) == 0
		for _, t := range teams {
			if strings.EqualFold(t.Org.Login, want.Name) {
				groups = append(groups, want.Name+":"+t.Slug)
				if slices.Contains(want.Teams, t.Slug) {
					inTeam = true
				}
			}
		}
		allowed = allowed || inTeam
	}
	if !allowed {
		names := make([]string, 0, len(c.cfg.Orgs))
		for _, o := range c.cfg.Orgs {
			names = append(names, o.Name)
		}
		return nil, connector.Errorf(nil, "Your GitHub account is not a member of an allowed organization or team (%s).", strings.Join(names, ", "))
	}
	slices.Sort(groups)
	return slices.Compact(groups), nil
}

// apiClient calls GitHub's REST API with the user's token.
type apiClient struct {
	c     *Connector
	ctx   context.Context
	token string
}

func (a *apiClient) get(path string, out any) error {
	_, err := a.getPage(a.c.apiURL+path, out)
	return err
}

// list follows the Link rel="next" pagination, up to maxPages pages of 100.
func (a *apiClient) list(path string, out any) error {
	next := a.c.apiURL + path + "?per_page=100"
	var all []json.RawMessage
	for page := 0; next != "" && page < maxPages; page++ {
		var items []json.RawMessage
		var err error
		if next, err = a.getPage(next, &items); err != nil {
			return err
		}
		// The token goes to the API only, whatever a Link header says.
		if next != "" && !strings.HasPrefix(next, a.c.apiURL+"/") {
			return fmt.Errorf("list %s: next page %q is not on the API host", path, next)
		}
		all = append(all, items...)
	}
	b, err := json.Marshal(all)
	if err != nil {
		return fmt.Errorf("collect %s: %w", path, err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decode %s: %w", path, err)
	}
	return nil
}

func (a *apiClient) getPage(u string, out any) (next string, err error) {
	req, err := http.NewRequestWithContext(a.ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", fmt.Errorf("call GitHub API: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	resp, err := a.c.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("call GitHub API %s: %w", req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return "", fmt.Errorf("read GitHub API %s: %w", req.URL.Path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("call GitHub API %s: status %s", req.URL.Path, resp.Status)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return "", fmt.Errorf("decode GitHub API %s: %w", req.URL.Path, err)
	}
	return nextLink(resp.Header.Get("Link")), nil
}

// nextLink returns the rel="next" URL of a Link header.
func nextLink(h string) string {
	for _, part := range strings.Split(h, ",") {
		fields := strings.Split(part, ";")
		if len(fields) < 2 {
			continue
		}
		for _, f := range fields[1:] {
			if strings.TrimSpace(f) == `rel="next"` {
				return strings.Trim(strings.TrimSpace(fields[0]), "<>")
			}
		}
	}
	return ""
}

package proxy

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const goodConfig = `version = 1
listen = "127.0.0.1:4747"
allowed_origins = ["http://localhost:3000"]

[[upstreams]]
name = "openai"
base_url = "https://api.openai.com/v1/"
models = ["gpt-*", "o3*"]
auth = "bearer"
keys = ["main", "backup"]
key_env = "OPENAI_API_KEY"
via = "direct"

[[upstreams]]
name = "anthropic"
base_url = "https://api.anthropic.com/v1"
models = ["claude-*"]
auth = "x-api-key"
key_env = "ANTHROPIC_API_KEY"
via = "socks5://user@127.0.0.1:1080"

[[pools]]
name = "work"
proxies = ["socks5://127.0.0.1:1080", "http://proxy.example:3128"]
`

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.toml")
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	return path
}

func TestLoadConfig(t *testing.T) {
	cfg, err := LoadConfig(writeConfig(t, goodConfig))
	require.NoError(t, err)
	require.Len(t, cfg.Upstreams, 2)
	assert.Equal(t, "https://api.openai.com/v1", cfg.Upstreams[0].BaseURL, "trailing slash trimmed")
	assert.Equal(t, []string{"main", "backup"}, cfg.Upstreams[0].Keys)
	assert.Equal(t, AuthXAPIKey, cfg.Upstream("anthropic").Auth)
	assert.Equal(t, "fastest", cfg.Pools[0].Strategy, "pool defaults")
	assert.Equal(t, "5m", cfg.Pools[0].Interval)
	assert.Equal(t, int64(32<<20), cfg.MaxBodyBytes())
}

func TestMissingConfigMeansDefaults(t *testing.T) {
	cfg, err := LoadConfig(filepath.Join(t.TempDir(), "nope", "config.toml"))
	require.NoError(t, err)
	assert.Equal(t, DefaultListen, cfg.Listen)
	assert.Empty(t, cfg.Upstreams)
	assert.Equal(t, 1, cfg.Version)
}

func TestConfigErrorsNameFileLineAndField(t *testing.T) {
	up := func(extra string) string {
		return "version = 1\n\n[[upstreams]]\nname = \"a\"\nbase_url = \"https://x.example/v1\"\n" + extra
	}
	tests := []struct {
		name, doc, want string
	}{
		{"unknown key", up("modles = [\"x\"]\n"), `:6: unknown field "upstreams.modles"`},
		{"bad url", "[[upstreams]]\nname = \"a\"\nbase_url = \"ftp://x\"\n", `:3: upstreams[0].base_url: "ftp://x" is not an http(s) URL`},
		{"url with password", up("") + "\n[[upstreams]]\nname = \"b\"\nbase_url = \"https://u:p@x.example\"\n", `:9: upstreams[1].base_url: a base URL must not carry a user or password`},
		{"duplicate name", up("") + "\n[[upstreams]]\nname = \"a\"\nbase_url = \"https://y.example\"\n", `:8: upstreams[1].name: upstream "a" is defined twice`},
		{"bad name", "[[upstreams]]\nname = \"Open AI\"\nbase_url = \"https://x.example\"\n", `:2: upstreams[0].name: "Open AI" must be lower-case`},
		{"missing base url", "[[upstreams]]\nname = \"a\"\n", `:1: upstreams[0].base_url: "" is not an http(s) URL`},
		{"bad glob", up("models = [\"gpt-*\", \"gpt-[4\"]\n"), `:6: upstreams[0].models[1]: model pattern "gpt-[4"`},
		{"unknown auth", up("auth = \"basic\"\n"), `:6: upstreams[0].auth: unknown auth scheme "basic"`},
		{"bad env name", up("key_env = \"OPENAI KEY\"\n"), `:6: upstreams[0].key_env`},
		{"bad duration", up("first_byte_timeout = \"soon\"\n"), `:6: upstreams[0].first_byte_timeout: "soon" is not a duration`},
		{"zero idle timeout", up("idle_timeout = \"0s\"\n"), `:6: upstreams[0].idle_timeout: must be more than zero`},
		{"zero request timeout", up("request_timeout = \"0\"\n"), `:6: upstreams[0].request_timeout: must be more than zero`},
		{"zero first byte timeout", up("first_byte_timeout = \"0ms\"\n"), `:6: upstreams[0].first_byte_timeout: must be more than zero`},
		{"zero queue timeout", up("queue_timeout = \"0s\"\n"), `:6: upstreams[0].queue_timeout: must be more than zero`},
		{"bad pool duration", "[[pools]]\nname = \"p\"\nproxies = [\"http://127.0.0.1:1\"]\ninterval = \"5 minutes\"\n", `:4: pools[0].interval: "5 minutes" is not a duration`},
		{"bad strategy", "[[pools]]\nname = \"p\"\nstrategy = \"random\"\nproxies = [\"http://127.0.0.1:1\"]\n", `:3: pools[0].strategy: unknown strategy "random"`},
		{"proxy password", up("via = \"http://me:hunter2@127.0.0.1:3128\"\n"), `:6: upstreams[0].via: "http://me:xxxxx@127.0.0.1:3128" holds a password`},
		{"unknown pool", up("via = \"pool:nope\"\n"), `:6: upstreams[0].via: no pool named "nope"`},
		{"bad via", up("via = \"vpn\"\n"), `:6: upstreams[0].via: "vpn" is neither direct`},
		{"lan listen", "listen = \"0.0.0.0:4747\"\n", `:1: listen: "0.0.0.0:4747" is not a loopback address`},
		{"bad listen", "listen = \"4747\"\n", `:1: listen: "4747" is not host:port`},
		{"wildcard origin", "allowed_origins = [\"*\"]\n", `:1: allowed_origins[0]: "*" is not an origin`},
		{"newer version", "version = 2\n", `:1: version: version 2 is not known`},
		{"missing ca file", up("ca_file = \"nope.pem\"\n"), `:6: upstreams[0].ca_file: read CA file`},
		{"toml syntax", "version = = 1\n", `:1:`},
		{"wrong type", "version = \"one\"\n", `:1:`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := writeConfig(t, tc.doc)
			_, err := LoadConfig(path)
			require.Error(t, err)
			assert.Contains(t, err.Error(), path+tc.want)
			assert.NotContains(t, err.Error(), "hunter2")
		})
	}
}

func TestSaveConfigIsAtomicAndPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "gatehouse")
	path := filepath.Join(dir, "config.toml")
	cfg, err := ParseConfig(path, []byte(goodConfig))
	require.NoError(t, err)
	require.NoError(t, SaveConfig(path, cfg))

	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	st, err = os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), st.Mode().Perm())

	again, err := LoadConfig(path)
	require.NoError(t, err)
	assert.Equal(t, cfg, again, "save then load round-trips")

	before, err := os.ReadFile(path)
	require.NoError(t, err)
	bad := *cfg
	bad.Upstreams = append([]Upstream{{Name: "BAD", BaseURL: "x"}}, cfg.Upstreams...)
	require.Error(t, SaveConfig(path, &bad))
	after, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, before, after, "a refused save leaves the old file")

	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temporary file is left behind")
}

func TestSaveConfigFailureLeavesOldFile(t *testing.T) {
	path := writeConfig(t, goodConfig)
	cfg, err := LoadConfig(path)
	require.NoError(t, err)
	// The target is a folder now: the rename fails after the temp file was
	// written; the folder and its content stay as they were.
	dirPath := filepath.Join(filepath.Dir(path), "sub")
	require.NoError(t, os.MkdirAll(filepath.Join(dirPath, "keep"), 0o700))
	require.Error(t, SaveConfig(dirPath, cfg))
	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.ElementsMatch(t, []string{"config.toml", "sub"}, names, "no temporary file is left behind")
}

func TestGlob(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"gpt-4o", "gpt-4o", true},
		{"gpt-4o", "gpt-4o-mini", false},
		{"gpt-*", "gpt-4o-mini", true},
		{"gpt-*", "gpt-", true},
		{"gpt-*", "chatgpt-4o", false},
		{"*", "", true},
		{"o3*", "o3", true},
		{"o?-mini", "o3-mini", true},
		{"o?-mini", "o-mini", false},
		{"meta-llama/*", "meta-llama/Llama-3-70b", true},
		{"*/Llama-*-70b", "meta-llama/Llama-3.1-70b", true},
		{"*llama*", "meta-llama/x", true},
		{"gpt-[34]*", "gpt-4o", true},
		{"gpt-[34]*", "gpt-5", false},
		{"gpt-[!34]*", "gpt-5", true},
		{"gpt-[0-9]", "gpt-7", true},
		{`a\*`, "a*", true},
		{`a\*`, "ab", false},
		{"*a*b*c*", "xaybzc", true},
		{"*a*b*c*", "xaybz", false},
	}
	for _, tc := range tests {
		g, err := compileGlob(tc.pattern)
		require.NoError(t, err, tc.pattern)
		assert.Equal(t, tc.want, g.match(tc.name), "%q ~ %q", tc.pattern, tc.name)
	}
	for _, bad := range []string{"", "gpt-[4", `gpt\`, "a[]", "x*[z-a]"} {
		_, err := compileGlob(bad)
		assert.Error(t, err, "%q", bad)
	}
}

func TestConfigRoutes(t *testing.T) {
	cfg := &Config{Upstreams: []Upstream{
		{Name: "openai", Models: []string{"gpt-*", "o3"}},
		{Name: "local"}, // no patterns: routed to by /u/local/ only
		{Name: "anthropic", Models: []string{"claude-*"}},
	}}
	for model, want := range map[string]bool{
		"gpt-5-codex": true, "o3": true, "o3-mini": false, "claude-sonnet-4-5": true, "llama3": false, "": false,
	} {
		assert.Equal(t, want, cfg.Routes(model), model)
	}
}

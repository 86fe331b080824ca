package setup

import (
	"net"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gatehouse-app/gatehouse/keystore"
	"github.com/gatehouse-app/gatehouse/proxy"
)

func TestUpstreamsFromPresetsWithAKey(t *testing.T) {
	s, mem := newSetup(t)
	p := Presets[3] // DeepSeek
	up := proxy.Upstream{Name: p.Name, BaseURL: p.BaseURL, Auth: p.Auth, Models: p.Models, Via: proxy.ViaDirect}
	require.NoError(t, s.SaveUpstream("", up, testKey))
	text := read(t, s.ConfigPath)
	require.Contains(t, text, "# the main one", "comments kept")
	require.NotContains(t, text, testKey)
	v, err := keystore.Secrets{Store: mem}.Get(keystore.KeyName("deepseek", "default"))
	require.NoError(t, err)
	require.Equal(t, testKey, v)
	cfg, err := s.Load()
	require.NoError(t, err)
	require.Equal(t, []string{"default"}, cfg.Upstream("deepseek").Keys)

	// The same name again is refused; a bad base URL saves nothing.
	require.ErrorContains(t, s.SaveUpstream("", up, ""), "exists")
	bad := up
	bad.Name, bad.BaseURL = "other", "api.example.com"
	err = s.SaveUpstream("", bad, "sk-other-key-0000000")
	key, _, ok := proxy.FieldError(err)
	require.True(t, ok, "%v", err)
	require.Equal(t, "base_url", key)
	require.Equal(t, 1, mem.Len(), "the refused upstream's key reached the keychain")

	// A failing keychain leaves the config as it was.
	before := read(t, s.ConfigPath)
	s.Store = failingStore{mem}
	other := up
	other.Name = "other"
	require.Error(t, s.SaveUpstream("", other, "sk-other-key-0000000"))
	require.Equal(t, before, read(t, s.ConfigPath))
	s.Store = mem

	// Changing it keeps its keys; removing it deletes them.
	up.Models = []string{"deepseek-chat"}
	require.NoError(t, s.SaveUpstream("deepseek", up, ""))
	cfg, err = s.Load()
	require.NoError(t, err)
	require.Equal(t, []string{"default"}, cfg.Upstream("deepseek").Keys)
	require.Equal(t, []string{"deepseek-chat"}, cfg.Upstream("deepseek").Models)
	require.NoError(t, s.RemoveUpstream("deepseek"))
	require.Equal(t, 0, mem.Len())
	require.Contains(t, read(t, s.ConfigPath), "# the main one")
}

func TestPoolsAndListen(t *testing.T) {
	s, _ := newSetup(t)
	pool := proxy.Pool{Name: "office", Proxies: []string{"http://127.0.0.1:3128", "socks5://127.0.0.1:1080"}, Strategy: "fastest"}
	require.NoError(t, s.SavePool("", pool, ""))
	require.NoError(t, s.Edit(func(c *proxy.Config) error {
		c.Pools[0].Pinned = "socks5://127.0.0.1:1080"
		c.Upstreams[0].Via = "pool:office"
		return nil
	}))
	require.ErrorContains(t, s.RemovePool("office"), `upstream "openai" routes through pool "office"`)
	pool.Proxies = pool.Proxies[:1]
	require.NoError(t, s.SavePool("office", pool, ""))
	cfg, err := s.Load()
	require.NoError(t, err)
	require.Empty(t, cfg.Pools[0].Pinned, "a pin on a member that is gone")
	// A member's password goes to the keychain with it; a refused pool
	// leaves none behind.
	mem := s.Store.(*keystore.Memory)
	pool.Proxies = []string{"socks5://me@127.0.0.1:1080"}
	require.NoError(t, s.SavePool("office", pool, "pw-5ecret"))
	require.Equal(t, 1, mem.Len())
	require.NotContains(t, read(t, s.ConfigPath), "pw-5ecret")
	require.NoError(t, keystore.Secrets{Store: mem}.Delete(keystore.ProxyName("me@127.0.0.1:1080")))
	pool.Proxies = []string{"ftp://me@127.0.0.1:21"}
	require.Error(t, s.SavePool("office", pool, "pw-5ecret"))
	require.Equal(t, 0, mem.Len())
	pool.Proxies = []string{"ftp://127.0.0.1:21"}
	err = s.SavePool("office", pool, "")
	key, _, ok := proxy.FieldError(err)
	require.True(t, ok, "%v", err)
	require.Equal(t, "proxies", key)

	err = s.SetListen("0.0.0.0:4747")
	require.ErrorContains(t, err, "access tokens")
	_, _, err2 := s.AddToken("lan")
	require.NoError(t, err2)
	require.NoError(t, s.SetListen("0.0.0.0:4747"))
}

func TestSetListenRefusesATakenPort(t *testing.T) {
	s, _ := newSetup(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()
	before := read(t, s.ConfigPath)
	err = s.SetListen(taken.Addr().String())
	key, _, ok := proxy.FieldError(err)
	require.True(t, ok, "%v", err)
	require.Equal(t, "listen", key)
	require.Equal(t, before, read(t, s.ConfigPath), "a taken port was saved")
}

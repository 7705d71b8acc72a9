package pkcs11

import (
	"sync"

	p11 "github.com/miekg/pkcs11"

	"github.com/orgkms/orgkms/internal/fault"
)

// A PKCS#11 module may be initialized once per process (C_Initialize), and
// C_Finalize ends every session of the process in it. Providers therefore
// share one initialized context per module path, counted: the last release
// finalizes and unloads it.
var modules = struct {
	sync.Mutex
	m map[string]*module
}{m: map[string]*module{}}

type module struct {
	path string
	ctx  *p11.Ctx
	refs int
	ours bool // we called C_Initialize, so we call C_Finalize
}

func acquireModule(path string) (*module, error) {
	modules.Lock()
	defer modules.Unlock()
	if m, ok := modules.m[path]; ok {
		m.refs++
		return m, nil
	}
	ctx := p11.New(path)
	if ctx == nil {
		return nil, &fault.Error{Kind: fault.Invalid, Field: "master_key", Reason: "cannot load the PKCS#11 module " + path + " (module-path or pkcs11.module_path): check the file exists and is a PKCS#11 library for this platform"}
	}
	ours := true
	if err := ctx.Initialize(); err != nil {
		if rv, ok := err.(p11.Error); ok && rv == p11.CKR_CRYPTOKI_ALREADY_INITIALIZED {
			ours = false
		} else {
			ctx.Destroy()
			return nil, classify("initialize", err, "")
		}
	}
	m := &module{path: path, ctx: ctx, refs: 1, ours: ours}
	modules.m[path] = m
	return m, nil
}

func (m *module) release() {
	modules.Lock()
	defer modules.Unlock()
	m.refs--
	if m.refs > 0 {
		return
	}
	delete(modules.m, m.path)
	if m.ours {
		m.ctx.Finalize()
	}
	m.ctx.Destroy()
}

// SPDX-License-Identifier: Apache-2.0
// The Node face passes its settings to the core, which resolves them as every face does:
// code beats environment beats profile. The core's table test covers every variable and key;
// this checks that each Node spelling reaches it, that NODE_EXTRA_CA_CERTS is honoured, that
// proxies carry the calls, and that bad settings are InvalidConfigError naming the field.
'use strict'
const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')
const tls = require('node:tls')
const util = require('node:util')
const { Writable } = require('node:stream')
const { mm, setup } = require('./helpers.cjs')

const TLS = path.join(__dirname, '..', '..', 'testdata', 'tls')
const CA = path.join(TLS, 'ca.pem')
const VARS = [
  'AWS_REGION', 'AWS_DEFAULT_REGION', 'AWS_PROFILE', 'AWS_CONFIG_FILE', 'AWS_SHARED_CREDENTIALS_FILE',
  'AWS_ENDPOINT_URL', 'AWS_ENDPOINT_URL_MARKETPLACE_METERING', 'AWS_IGNORE_CONFIGURED_ENDPOINT_URLS',
  'AWS_USE_FIPS_ENDPOINT', 'AWS_USE_DUALSTACK_ENDPOINT', 'AWS_MAX_ATTEMPTS', 'AWS_RETRY_MODE',
  'AWS_CA_BUNDLE', 'AWS_SDK_UA_APP_ID', 'HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy',
  'NO_PROXY', 'no_proxy', 'NODE_EXTRA_CA_CERTS',
]
const creds = { accessKeyId: 'AKIDTEST', secretAccessKey: 'secret-value' }

/** Runs `fn` with a clean AWS environment (plus `vars`) and empty shared files. */
async function withEnv(vars, fn) {
  const saved = Object.fromEntries(VARS.map((k) => [k, process.env[k]]))
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mm-node-config-'))
  fs.writeFileSync(path.join(dir, 'config'), vars.$config ?? '')
  fs.writeFileSync(path.join(dir, 'credentials'), '')
  for (const k of VARS) delete process.env[k]
  process.env.AWS_CONFIG_FILE = path.join(dir, 'config')
  process.env.AWS_SHARED_CREDENTIALS_FILE = path.join(dir, 'credentials')
  for (const [k, v] of Object.entries(vars)) if (k !== '$config') process.env[k] = v
  try {
    return await fn()
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k]
      else process.env[k] = v
    }
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

test('the environment is read by the core', () =>
  withEnv(
    {
      AWS_REGION: 'us-gov-west-1',
      AWS_USE_FIPS_ENDPOINT: 'true',
      AWS_MAX_ATTEMPTS: '7',
      AWS_RETRY_MODE: 'legacy',
      AWS_SDK_UA_APP_ID: 'billing-7',
      HTTPS_PROXY: 'http://user:hunter2@proxy.test:3128',
    },
    async () => {
      const c = await new mm.MarketplaceMeteringClient({ credentials: creds }).resolvedConfig()
      assert.equal(c.endpoint, 'https://metering.marketplace-fips.us-gov-west-1.amazonaws.com')
      assert.deepEqual([c.maxAttempts, c.retryMode, c.userAgentAppId], [7, 'legacy', 'billing-7'])
      assert.equal(c.origins.maxAttempts, 'env:AWS_MAX_ATTEMPTS')
      assert.equal(c.httpsProxy, 'http://***@proxy.test:3128')
      assert.match(c.userAgent, / app\/billing-7$/)
      // Byte for byte what the face sent when the core knew it by an enum.
      const v = require('../package.json').version
      assert.equal(c.userAgent, `marketplace-metering/${v} lang/node/${v} os/${process.platform} app/billing-7`)
      assert.ok(!JSON.stringify(c).includes('hunter2'))
    },
  ))

test('code beats environment', () =>
  withEnv({ AWS_REGION: 'us-gov-west-1', AWS_USE_FIPS_ENDPOINT: 'true', AWS_MAX_ATTEMPTS: '7', AWS_SDK_UA_APP_ID: 'from-env' }, async () => {
    const c = await new mm.MarketplaceMeteringClient({
      credentials: creds,
      region: 'eu-west-1',
      useFipsEndpoint: false,
      useDualstackEndpoint: true,
      maxAttempts: 2,
      retryMode: 'adaptive',
      userAgentAppId: 'from-code',
      httpsProxy: 'http://proxy.test:1',
      httpProxy: 'http://proxy.test:2',
      noProxy: 'localhost',
    }).resolvedConfig()
    assert.equal(c.endpoint, 'https://metering-marketplace.eu-west-1.api.aws')
    assert.deepEqual([c.maxAttempts, c.retryMode, c.userAgentAppId], [2, 'adaptive', 'from-code'])
    assert.deepEqual([c.httpsProxy, c.httpProxy, c.noProxy], ['http://proxy.test:1', 'http://proxy.test:2', 'localhost'])
    assert.equal(c.origins.useFipsEndpoint, 'code')
  }))

test('the profile is read by the core', () =>
  withEnv(
    {
      $config: '[profile dev]\nregion = ap-south-1\nmax_attempts = 4\nservices = local\n[services local]\nmarketplace_metering =\n  endpoint_url = http://127.0.0.1:9\n',
    },
    async () => {
      const c = await new mm.MarketplaceMeteringClient({ credentials: creds, profile: 'dev' }).resolvedConfig()
      assert.deepEqual([c.region, c.endpoint, c.maxAttempts], ['ap-south-1', 'http://127.0.0.1:9', 4])
      assert.equal(c.origins.endpoint, 'profile:dev:services.marketplace_metering.endpoint_url')
    },
  ))

test('bad settings are InvalidConfigError naming the field', async () => {
  const cases = [
    [{ AWS_MAX_ATTEMPTS: 'abc' }, {}, 'AWS_MAX_ATTEMPTS'],
    [{ AWS_USE_DUALSTACK_ENDPOINT: 'yes' }, {}, 'AWS_USE_DUALSTACK_ENDPOINT'],
    [{ AWS_CA_BUNDLE: '/nonexistent/ca.pem' }, {}, 'AWS_CA_BUNDLE'],
    [{ NODE_EXTRA_CA_CERTS: '/nonexistent/ca.pem' }, {}, 'extra_ca_bundle'],
    [{}, { maxAttempts: 0 }, 'max_attempts'],
    [{}, { maxAttempts: -2 }, 'max_attempts'],
    [{}, { maxAttempts: 'three' }, 'maxAttempts'],
    [{}, { retryMode: 'sometimes' }, 'retry_mode'],
    [{}, { requestTimeout: 0 }, 'read_timeout'],
    [{}, { useDualstackEndpoint: 'yes' }, 'useDualStack'],
    [{}, { httpsProxy: 'not a url' }, 'https_proxy'],
    [{}, { userAgentAppId: 'has space' }, 'app_id'],
    [{}, { caBundle: '/nonexistent/ca.pem' }, 'ca_bundle'],
    [{}, { credentials: { accessKeyId: 'AKID' } }, 'aws_secret_access_key'],
  ]
  for (const [vars, options, field] of cases) {
    await withEnv({ AWS_REGION: 'us-east-1', ...vars }, async () => {
      const c = new mm.MarketplaceMeteringClient({ credentials: creds, ...options })
      await assert.rejects(c.resolvedConfig(), (e) => {
        assert.ok(e instanceof mm.InvalidConfigError, `${field}: ${e}`)
        assert.equal(e.field, field, String(e))
        assert.ok(!String(e).includes('secret-value'))
        return true
      })
    })
  }
})

// --- TLS and proxies on 127.0.0.1 -------------------------------------------------------

/** The emulator behind a TLS forwarder whose certificate testdata/tls/ca.pem signed. */
function httpsForwarder(emu) {
  const up = new URL(emu.endpoint)
  const server = tls.createServer(
    { cert: fs.readFileSync(path.join(TLS, 'server.pem')), key: fs.readFileSync(path.join(TLS, 'server.key')) },
    (sock) => {
      const upstream = net.connect(Number(up.port), up.hostname)
      sock.pipe(upstream).pipe(sock)
      sock.on('error', () => upstream.destroy())
      upstream.on('error', () => sock.destroy())
    },
  )
  server.on('tlsClientError', () => {})
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, url: `https://127.0.0.1:${server.address().port}` })))
}

/** A forward proxy on 127.0.0.1 that records each CONNECT it tunnels. */
function connectProxy() {
  const seen = []
  const server = net.createServer((sock) => {
    let head = Buffer.alloc(0)
    const onData = (chunk) => {
      head = Buffer.concat([head, chunk])
      const end = head.indexOf('\r\n\r\n')
      if (end < 0) return
      sock.off('data', onData)
      const [method, target] = head.subarray(0, end).toString().split(' ')
      seen.push(`${method} ${target}`)
      if (method !== 'CONNECT') return sock.end('HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n')
      const [host, port] = target.split(':')
      const upstream = net.connect(Number(port), host, () => {
        sock.write('HTTP/1.1 200 Connection Established\r\n\r\n')
        const rest = head.subarray(end + 4)
        if (rest.length) upstream.write(rest)
        sock.pipe(upstream).pipe(sock)
      })
      upstream.on('error', () => sock.destroy())
      sock.on('error', () => upstream.destroy())
    }
    sock.on('data', onData)
  })
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, seen, url: `http://127.0.0.1:${server.address().port}` })))
}

const call = (client) => client.send(new mm.ResolveCustomerCommand({ RegistrationToken: 'reg-token-valid' }))

test('caBundle, AWS_CA_BUNDLE and NODE_EXTRA_CA_CERTS trust the test CA; nothing else does', async () => {
  const { emu, client } = setup()
  const { server, url } = await httpsForwarder(emu)
  try {
    await withEnv({}, async () => {
      await assert.rejects(call(client({ endpoint: url, maxAttempts: 1 })), (e) => e.code === 'Dispatch')
      await call(client({ endpoint: url, caBundle: CA }))
    })
    await withEnv({ AWS_CA_BUNDLE: CA }, () => call(client({ endpoint: url })))
    await withEnv({ NODE_EXTRA_CA_CERTS: CA }, () => call(client({ endpoint: url })))
  } finally {
    server.close()
    emu.stop()
  }
})

test('proxies from code and environment carry calls, except NO_PROXY', async () => {
  const { emu, client } = setup()
  const { server, url } = await httpsForwarder(emu)
  const proxy = await connectProxy()
  const hostPort = url.slice('https://'.length)
  try {
    await withEnv({}, () => call(client({ endpoint: url, caBundle: CA, httpsProxy: proxy.url })))
    assert.deepEqual(proxy.seen, [`CONNECT ${hostPort}`])
    await withEnv({ HTTPS_PROXY: proxy.url }, () => call(client({ endpoint: url, caBundle: CA })))
    assert.equal(proxy.seen.length, 2)
    await withEnv({ HTTPS_PROXY: proxy.url, NO_PROXY: '127.0.0.1' }, () => call(client({ endpoint: url, caBundle: CA })))
    assert.equal(proxy.seen.length, 2)
  } finally {
    server.close()
    proxy.server.close()
    emu.stop()
  }
})

// --- the surface an SDK v3 user touches ---------------------------------------------------

test('client.config resolves as SDK v3 does; destroy closes the pool', () =>
  withEnv({ AWS_REGION: 'eu-west-1', AWS_MAX_ATTEMPTS: '4' }, async () => {
    const c = new mm.MarketplaceMeteringClient({ credentials: creds, useDualstackEndpoint: true })
    assert.equal(await c.config.region(), 'eu-west-1')
    assert.equal(await c.config.maxAttempts(), 4)
    assert.equal(await c.config.useDualstackEndpoint(), true)
    assert.equal(await c.config.retryMode(), 'standard')
    assert.equal((await c.config.credentials()).accessKeyId, 'AKIDTEST')
    assert.ok(!JSON.stringify(c.config).includes('secret-value'))
    const native = c._native
    c.destroy()
    assert.equal(native.close(), 0) // destroy() released it already
  }))

test('client.config never shows a proxy password or the credentials, and still reads them', () =>
  withEnv({}, async () => {
    const secret = 'SECRET-do-not-print-0123456789'
    const token = 'TOKEN-do-not-print-9876543210'
    const httpsProxy = 'http://u:hunter2@p.test:1'
    const httpProxy = 'http://u:swordfish@p.test:2'
    const settings = {
      region: 'us-east-1',
      credentials: { accessKeyId: 'AKIDSHOWN', secretAccessKey: secret, sessionToken: token },
      httpsProxy,
      httpProxy,
      noProxy: 'localhost',
    }
    for (const Client of [mm.MarketplaceMeteringClient, mm.MarketplaceMetering]) {
      const c = new Client(settings)
      let logged = ''
      const sink = new Writable({ write: (chunk, _enc, done) => { logged += chunk; done() } })
      const out = new console.Console({ stdout: sink, stderr: sink })
      for (const o of [c.config, c._settings]) {
        out.log(o)
        out.dir(o, { depth: Infinity, showHidden: true })
      }
      out.dir(c, { depth: Infinity, showHidden: true, customInspect: false })
      const shown = [
        logged,
        ...[c.config, c._settings].flatMap((o) => [
          util.inspect(o, { depth: Infinity }),
          util.inspect(o, { depth: Infinity, showHidden: true }),
          util.format('%o', o),
          util.format('%O', o),
          JSON.stringify(o),
          JSON.stringify({ ...o }),
          JSON.stringify(Object.assign({}, o)),
        ]),
      ]
      for (const s of shown) {
        for (const bad of ['hunter2', 'swordfish', secret, token]) assert.ok(!s.includes(bad), `${Client.name} shows ${bad}: ${s}`)
      }
      // What the caller gave still reads back, as before.
      assert.equal(c.config.httpsProxy, httpsProxy)
      assert.equal(c.config.httpProxy, httpProxy)
      assert.equal(c.config.noProxy, 'localhost')
      assert.ok('httpsProxy' in c.config && 'httpProxy' in c.config)
      assert.equal((await c.config.credentials()).secretAccessKey, secret)
      // And the core still gets them (redacted in what it tells).
      const r = await c.resolvedConfig()
      assert.deepEqual([r.httpsProxy, r.httpProxy], ['http://***@p.test:1', 'http://***@p.test:2'])
    }
  }))

test('an endpoint with a password never shows, before the core refuses it', () =>
  withEnv({}, async () => {
    const spellings = ['https://u:opensesame@h.test', ' https://u:opensesame@h.test', 'https:\\\\u:opensesame@h.test', 'https:/u:opensesame@h.test', 'ht\ttps://u:opensesame@h.test']
    for (const endpoint of [...spellings, new URL('https://u:opensesame@h.test/')]) {
      for (const Client of [mm.MarketplaceMeteringClient, mm.MarketplaceMetering]) {
        const c = new Client({ region: 'us-east-1', endpoint })
        const shown = [util.inspect(c), util.format('%o', c), JSON.stringify(c)]
        for (const o of [c.config, c._settings]) {
          shown.push(util.inspect(o, { depth: Infinity, showHidden: true }), JSON.stringify(o), JSON.stringify({ ...o }))
        }
        for (const s of shown) assert.ok(!s.includes('opensesame'), `${Client.name} shows the password: ${s}`)
        assert.match(util.inspect(c), /h\.test/)
        // Given back as given, and refused by the core naming the field.
        assert.equal(c.config.endpoint, endpoint)
        await assert.rejects(c.resolvedConfig(), (e) => !e.message.includes('opensesame') && /endpoint/.test(e.message))
      }
    }
  }))

test('abortSignal: before the call and while waiting', async () => {
  const { emu, client } = setup()
  try {
    const c = client()
    const cmd = () => new mm.ResolveCustomerCommand({ RegistrationToken: 'reg-token-valid' })
    await assert.rejects(c.send(cmd(), { abortSignal: AbortSignal.abort() }), { name: 'AbortError' })
    emu.pushFault({ kind: 'delay', seconds: 2 })
    const ac = new AbortController()
    const started = Date.now()
    setTimeout(() => ac.abort(), 100)
    await assert.rejects(c.send(cmd(), { abortSignal: ac.signal }), { name: 'AbortError' })
    assert.ok(Date.now() - started < 1500)
    const out = await c.send(cmd(), { abortSignal: new AbortController().signal })
    assert.ok(out.CustomerIdentifier)
  } finally {
    emu.stop()
  }
})

test('abortSignal cancels the attempt in flight: its connection closes, no retry follows', async () => {
  // A server that reads each request and never answers: before cancellation reached the core,
  // the aborted call kept its connection (and its retries) until the attempt timeout.
  const sockets = []
  let requests = 0
  const server = net.createServer((s) => {
    const entry = { closedAt: 0 }
    sockets.push(entry)
    s.on('data', (d) => { requests += (d.toString().match(/^POST /gm) || []).length })
    s.on('close', () => { entry.closedAt = Date.now() })
    s.on('error', () => {})
  })
  await new Promise((r) => server.listen(0, '127.0.0.1', r))
  try {
    const c = new mm.MarketplaceMeteringClient({
      region: 'us-east-1',
      endpoint: `http://127.0.0.1:${server.address().port}`,
      credentials: creds,
      maxAttempts: 3,
    })
    const ac = new AbortController()
    const call = c.send(new mm.ResolveCustomerCommand({ RegistrationToken: 'reg-token-valid' }), { abortSignal: ac.signal })
    while (requests === 0) await new Promise((r) => setTimeout(r, 10))
    const abortedAt = Date.now()
    ac.abort()
    await assert.rejects(call, { name: 'AbortError' })
    await new Promise((r) => setTimeout(r, 1000))
    assert.equal(sockets.length, 1, 'no second connection (no retry) after the abort')
    assert.equal(requests, 1)
    assert.ok(sockets[0].closedAt > 0, 'the aborted attempt closed its connection')
    assert.ok(sockets[0].closedAt - abortedAt < 900)
    c.destroy()
  } finally {
    server.close()
  }
})

test('errors carry $retryable and $response as SDK v3 errors do', async () => {
  const { emu, client } = setup()
  try {
    emu.pushFault({ kind: 'throttle' })
    const e = await client({ maxAttempts: 1 }).send(new mm.ResolveCustomerCommand({ RegistrationToken: 'reg-token-valid' })).catch((x) => x)
    assert.ok(e instanceof mm.ThrottlingException)
    assert.deepEqual(e.$retryable, { throttling: true })
    assert.equal(e.$response.statusCode, 400)
    assert.equal(e.$response.headers['x-amzn-requestid'], e.$metadata.requestId)
    const bad = await client().send(new mm.ResolveCustomerCommand({ RegistrationToken: 'nope' })).catch((x) => x)
    assert.equal(bad.$retryable, undefined)
    assert.equal(bad.$response.statusCode, 400)
  } finally {
    emu.stop()
  }
})

test('an abortSignal without addEventListener (the legacy shape SDK v3 takes) neither throws nor loses the call', async () => {
  // Found by a review: the call started, then a TypeError rejected send() while the call's own
  // rejection went unhandled (the process ended under Node's default).
  const { emu, client } = setup()
  try {
    const c = client({ maxAttempts: 1 })
    const legacy = { aborted: false, onabort: null }
    const out = await c.send(new mm.ResolveCustomerCommand({ RegistrationToken: 'reg-token-valid' }), { abortSignal: legacy })
    assert.ok(out.CustomerIdentifier)
    const bad = await c.send(new mm.ResolveCustomerCommand({ RegistrationToken: 'nope' }), { abortSignal: { aborted: false } }).catch((e) => e)
    assert.ok(bad instanceof mm.InvalidTokenException, String(bad))
    // The legacy shape aborts through onabort, as SDK v3's AbortController polyfill did.
    emu.pushFault({ kind: 'delay', seconds: 5 })
    const started = Date.now()
    const call = c.send(new mm.ResolveCustomerCommand({ RegistrationToken: 'reg-token-valid' }), { abortSignal: legacy })
    setTimeout(() => { legacy.aborted = true; legacy.onabort?.() }, 100)
    await assert.rejects(call, { name: 'AbortError' })
    assert.ok(Date.now() - started < 3000)
  } finally {
    emu.stop()
  }
})

test('a legacy abortSignal keeps its own onabort, and aborts every call it was given', async () => {
  const { emu, client } = setup()
  try {
    const c = client({ maxAttempts: 1 })
    let mine = 0
    const legacy = { aborted: false, onabort: () => { mine++ } }
    const own = legacy.onabort
    await c.send(new mm.ResolveCustomerCommand({ RegistrationToken: 'reg-token-valid' }), { abortSignal: legacy })
    assert.equal(legacy.onabort, own, 'put back after the call')
    emu.pushFault({ kind: 'delay', seconds: 2 })
    emu.pushFault({ kind: 'delay', seconds: 2 })
    const cmd = () => new mm.ResolveCustomerCommand({ RegistrationToken: 'reg-token-valid' })
    const a = c.send(cmd(), { abortSignal: legacy })
    const b = c.send(cmd(), { abortSignal: legacy })
    setTimeout(() => { legacy.aborted = true; legacy.onabort() }, 100)
    await assert.rejects(a, { name: 'AbortError' })
    await assert.rejects(b, { name: 'AbortError' })
    assert.equal(mine, 1)
  } finally {
    emu.stop()
  }
})

// SPDX-License-Identifier: Apache-2.0
// marketplace-metering: an AWS SDK v3-shaped client over the Rust core (marketplace-metering.<platform>.node).
'use strict'

const { EventEmitter } = require('node:events')
const { inspect } = require('node:util')
const { loadAddon } = require('./addon.js')
const { encodeBatchMeterUsage } = require('./encode.js')

const PACKAGE_VERSION = require('./package.json').version

// The native addon: the platform package's prebuilt one, or a local build (addon.js).
const native = loadAddon()

// ---- errors: built from the core's ErrorCode table -----------------------------------------

/** Base of every exception the service (or an unknown service code) answered with. */
class MarketplaceMeteringServiceException extends Error {
  constructor(options) {
    super(options.message)
    Object.setPrototypeOf(this, new.target.prototype)
    this.name = options.name ?? new.target.name
    this.$fault = options.$fault ?? 'client'
    this.$metadata = options.$metadata ?? {}
    this.code = options.code ?? this.name
    if (options.retryable !== undefined) this.retryable = options.retryable
  }
}

/** Base of every error raised on this side of the wire (invalid input, network, timeouts). */
class MarketplaceMeteringError extends Error {
  constructor(options) {
    super(options.message)
    Object.setPrototypeOf(this, new.target.prototype)
    this.name = options.name ?? new.target.name
    this.$fault = options.$fault ?? 'client'
    this.$metadata = options.$metadata ?? {}
    this.code = options.code ?? this.name
    if (options.field !== undefined) this.field = options.field
    if (options.retryable !== undefined) this.retryable = options.retryable
  }
}

const ERROR_CODES = Object.freeze(native.errorCodes().map((row) => Object.freeze(row)))

const errorClasses = { MarketplaceMeteringServiceException, MarketplaceMeteringError }
const classByCode = new Map()
for (const row of ERROR_CODES) {
  let cls = errorClasses[row.className]
  if (!cls) {
    const Base = row.service ? MarketplaceMeteringServiceException : MarketplaceMeteringError
    const name = row.className
    // A named class expression, so `cls.name` and stack traces read right.
    cls = {
      [name]: class extends Base {
        constructor(options) {
          super({ ...options, name: options?.name ?? name, $fault: options?.$fault ?? row.fault })
        }
      },
    }[name]
    errorClasses[name] = cls
  }
  classByCode.set(row.code, cls)
}

function metadata(d) {
  return {
    httpStatusCode: d.httpStatusCode ?? undefined,
    requestId: d.requestId ?? undefined,
    extendedRequestId: undefined,
    cfId: undefined,
    attempts: d.attempts ?? 0,
    totalRetryDelay: d.totalRetryDelay ?? 0,
  }
}

/** Turns an error thrown by the addon into an instance of the right class. */
function translateError(err) {
  if (!err || typeof err.nativeError !== 'string') return err
  return errorFromDetail(JSON.parse(err.nativeError))
}

/** Builds the error a `nativeError` JSON object describes. */
function errorFromDetail(d) {
  const cls = classByCode.get(d.code) ?? MarketplaceMeteringServiceException
  const e = new cls({
    // `Unhandled`: the service's own code is the name, as SDK v3 does for unknown codes.
    name: d.code === 'Unhandled' ? d.serviceCode : undefined,
    message: d.message,
    code: d.code,
    $fault: d.fault,
    $metadata: metadata(d),
    field: d.field ?? undefined,
    retryable: d.retryable,
  })
  if (d.code === 'Unhandled') e.serviceCode = d.serviceCode
  // SDK v3: `$retryable` ({ throttling }) when the error may be retried, `$response` when
  // the service answered (status and headers; the body was consumed into the error).
  if (d.retryable) e.$retryable = { throttling: d.retryReason === 'throttling' }
  if (d.httpStatusCode) {
    Object.defineProperty(e, '$response', {
      value: { statusCode: d.httpStatusCode, headers: d.headers ?? {}, body: undefined },
      enumerable: false,
    })
  }
  // For the client's logger; not enumerable, so it never shows in util.inspect or JSON.
  Object.defineProperty(e, '$attemptLog', { value: d.attemptLog ?? [], enumerable: false })
  return e
}

/** SDK v3's abort error. */
function abortError() {
  const e = new Error('Request aborted')
  e.name = 'AbortError'
  return e
}

/**
 * `promise`, or an AbortError as soon as `signal` aborts (after `cancel`). As SDK v3, a signal
 * without `addEventListener` (the legacy `@aws-sdk/abort-controller` shape) is told through
 * its `onabort`; the call's outcome is always handled, whatever the signal does.
 */
function raceAbort(promise, signal, cancel) {
  return new Promise((resolve, reject) => {
    let settled = false
    const listens = typeof signal.addEventListener === 'function'
    // A legacy signal's own `onabort` (the caller's, or another call's on the same signal)
    // still runs, and is put back when this call ends first.
    let previous = null
    const onAbort = function (...args) {
      if (typeof previous === 'function') {
        try {
          previous.apply(this, args)
        } catch {}
      }
      if (settled) return
      settled = true
      reject(abortError())
      try {
        cancel()
      } catch {}
    }
    const stop = () => {
      try {
        if (listens) signal.removeEventListener?.('abort', onAbort)
        else if (signal.onabort === onAbort) signal.onabort = previous
      } catch {}
    }
    promise.then(
      (v) => {
        stop()
        if (!settled) resolve(v)
        settled = true
      },
      (e) => {
        stop()
        if (!settled) reject(e)
        settled = true
      },
    )
    try {
      if (listens) {
        signal.addEventListener('abort', onAbort, { once: true })
      } else {
        previous = signal.onabort
        signal.onabort = onAbort
      }
    } catch {}
  })
}

/** One `logger.debug` per attempt, with SDK v3's logger interface ({debug, info, warn, error}). */
function logAttempts(logger, attempts) {
  if (!logger || typeof logger.debug !== 'function' || !Array.isArray(attempts)) return
  for (const a of attempts) {
    try {
      logger.debug({
        clientName: 'MarketplaceMeteringClient',
        commandName: `${a.operation}Command`,
        operation: a.operation,
        attempt: a.attempt,
        status: a.status ?? undefined,
        requestId: a.requestId ?? undefined,
        latencyMs: a.latencyMs,
        outcome: a.outcome,
        retryReason: a.retryReason ?? undefined,
        retryDelayMs: a.retryDelayMs ?? undefined,
      })
    } catch {
      // A failing logger must not fail the call.
    }
  }
}

// ---- outputs -------------------------------------------------------------------------------

const toDate = (secs) => (typeof secs === 'number' ? new Date(Math.round(secs * 1000)) : secs)

function withMetadata(out) {
  out.$metadata = metadata(out.$metadata ?? {})
  return out
}

/**
 * A usage record from the addon's row `[Timestamp (epoch ms), CustomerIdentifier, Dimension,
 * Quantity, UsageAllocations, CustomerAWSAccountId, LicenseArn]`; a `null` member is left out.
 */
function recordFromRow(row) {
  const r = { Timestamp: new Date(row[0]) }
  if (row[1] !== null) r.CustomerIdentifier = row[1]
  r.Dimension = row[2]
  if (row[3] !== null) r.Quantity = row[3]
  if (row[4] !== null) r.UsageAllocations = row[4]
  if (row[5] !== null) r.CustomerAWSAccountId = row[5]
  if (row[6] !== null) r.LicenseArn = row[6]
  return r
}

/** A result from the addon's row `[UsageRecord row, MeteringRecordId, Status]`. */
function resultFromRow(row) {
  const r = {}
  if (row[0] !== null) r.UsageRecord = recordFromRow(row[0])
  if (row[1] !== null) r.MeteringRecordId = row[1]
  if (row[2] !== null) r.Status = row[2]
  return r
}

// Each op's output from what the addon's JSON parses to.
const outputs = {
  // `[$metadata, [result row, …], [record row, …]]` (src/convert/outputs.rs).
  BatchMeterUsage([$metadata, results, unprocessed]) {
    return { $metadata, Results: results.map(resultFromRow), UnprocessedRecords: unprocessed.map(recordFromRow) }
  },
  MeterUsage: (out) => out,
  ResolveCustomer: (out) => out,
  RegisterUsage(out) {
    if (out.PublicKeyRotationTimestamp !== undefined) out.PublicKeyRotationTimestamp = toDate(out.PublicKeyRotationTimestamp)
    return out
  },
}

// ---- commands ------------------------------------------------------------------------------

class Command {
  constructor(input) {
    this.input = input
  }
}

/** `encode` writes an input as the compact text the addon reads first (encode.js), if it can. */
function defineCommand(operation, method, encode = () => undefined) {
  const name = `${operation}Command`
  const cls = {
    [name]: class extends Command {},
  }[name]
  Object.defineProperty(cls, 'operation', { value: operation })
  Object.defineProperty(cls, 'nativeMethod', { value: method })
  Object.defineProperty(cls, 'encode', { value: encode })
  return cls
}

const BatchMeterUsageCommand = defineCommand('BatchMeterUsage', 'batchMeterUsage', encodeBatchMeterUsage)
const MeterUsageCommand = defineCommand('MeterUsage', 'meterUsage')
const ResolveCustomerCommand = defineCommand('ResolveCustomer', 'resolveCustomer')
const RegisterUsageCommand = defineCommand('RegisterUsage', 'registerUsage')

// ---- client --------------------------------------------------------------------------------

const REFRESH_BEFORE_EXPIRY_MS = 5 * 60 * 1000

/** A client setting of the wrong type: the core's `InvalidConfig`, as every other bad setting. */
function settingError(field, message) {
  return new errorClasses.InvalidConfigError({ message: `${field}: ${message}`, code: 'InvalidConfig', field })
}

function configError(field, message) {
  return new errorClasses.ValidationError({ message: `${field}: ${message}`, code: 'InvalidInput', field })
}

function endpointString(endpoint) {
  if (endpoint === undefined || endpoint === null) return undefined
  if (typeof endpoint === 'string') return endpoint
  if (endpoint instanceof URL) return endpoint.href.replace(/\/$/, '')
  if (typeof endpoint === 'object' && endpoint.hostname) {
    const protocol = (endpoint.protocol ?? 'https:').replace(/:?$/, ':')
    const port = endpoint.port ? `:${endpoint.port}` : ''
    return `${protocol}//${endpoint.hostname}${port}${endpoint.path && endpoint.path !== '/' ? endpoint.path : ''}`
  }
  throw configError('endpoint', 'must be a URL string, a URL or an endpoint object')
}

/**
 * An endpoint as shown, by the core's rule: its user info as `***`. The core refuses an
 * endpoint with user info when it first resolves the settings, but the client exists before
 * that, and may be logged.
 */
function shownEndpoint(e) {
  const text = typeof e === 'string' ? e : e instanceof URL ? e.href : undefined
  if (text === undefined) return e
  const shown = native.redactUrl(text)
  return shown === text ? e : shown
}

/**
 * `settings`, with the proxy URLs (which may hold a password), and an endpoint that holds
 * one, made non-enumerable accessors: they read as given, and neither util.inspect /
 * console.log (not even with showHidden: a getter is not called) nor JSON.stringify nor a
 * spread shows them.
 */
function hideSecrets(settings) {
  for (const k of ['httpsProxy', 'httpProxy', 'endpoint']) {
    if (!Object.prototype.hasOwnProperty.call(settings, k)) continue
    if (k === 'endpoint' && shownEndpoint(settings[k]) === settings[k]) continue
    let value = settings[k]
    Object.defineProperty(settings, k, {
      get: () => value,
      set: (v) => {
        value = v
      },
      enumerable: false,
      configurable: true,
    })
  }
  return settings
}

class MarketplaceMeteringClient {
  // Secrets live only in private fields: never in an enumerable property, so neither
  // util.inspect, console.log nor JSON.stringify can show them.
  /** The `credentials` option: an object or a provider function. */
  #credentials
  /** The provider's last answer. */
  #creds = null
  #credsPending = null
  /** Which credentials the native client signs with (compared, never shown). */
  #nativeKey = null

  /**
   * @param {object} [config] region, endpoint, credentials (object or async provider),
   *   maxAttempts (all attempts), retryMode, requestTimeout (ms, bounds each attempt:
   *   every read and the whole response) / connectionTimeout (ms), operationTimeout (ms,
   *   bounds the whole call, retries included), useFipsEndpoint, useDualstackEndpoint,
   *   profile, caBundle (a PEM file trusted instead of the platform's roots; NODE_EXTRA_CA_CERTS
   *   is added to them), httpsProxy / httpProxy / noProxy, userAgentAppId, logger (SDK v3's
   *   {debug, info, warn, error}: one `debug` per attempt). Whatever is not
   *   set comes from the environment and the shared config file, resolved by the core.
   */
  constructor(config = {}) {
    if (config === null || typeof config !== 'object') throw configError('config', 'must be an object')
    const { credentials, ...rest } = config
    // client.config is a copy of the settings, taken before they are hidden (a spread skips
    // what is not enumerable); both hide the proxies.
    this.config = hideSecrets({ ...rest })
    this._settings = hideSecrets(rest)
    this.#credentials = credentials
    if (credentials !== undefined) {
      // As SDK v3's resolved config: a provider. Not enumerable, and a function, so an
      // inspection shows neither the key nor the secret.
      const provider = typeof credentials === 'function' ? credentials : async () => credentials
      Object.defineProperty(this._settings, 'credentials', { value: provider, enumerable: false })
    }
    // SDK v3's resolved config: the settings, with region, useFipsEndpoint,
    // useDualstackEndpoint, maxAttempts and retryMode as async providers of what the core
    // resolved (code, environment, shared config file): `await client.config.region()`.
    const resolved = (key) => async () => (await this.resolvedConfig())[key]
    for (const k of ['region', 'useFipsEndpoint', 'useDualstackEndpoint', 'maxAttempts', 'retryMode']) {
      this.config[k] = resolved(k)
    }
    if (this._settings.credentials !== undefined) {
      Object.defineProperty(this.config, 'credentials', { value: this._settings.credentials, enumerable: false })
    }
    this._native = null
  }

  [inspect.custom](depth, options, inspectFn) {
    const shown = {
      region: this._settings.region,
      endpoint: shownEndpoint(this._settings.endpoint),
      credentials: this.#credentials === undefined ? 'default chain' : typeof this.#credentials === 'function' ? 'provider' : 'static',
      maxAttempts: this._settings.maxAttempts,
      retryMode: this._settings.retryMode,
    }
    return `${this.constructor.name} ${inspectFn(shown, options)}`
  }

  toJSON() {
    return { region: this._settings.region, endpoint: shownEndpoint(this._settings.endpoint) }
  }

  async _region() {
    const r = this._settings.region
    return typeof r === 'function' ? await r() : r
  }

  async _endpoint() {
    const e = this._settings.endpoint
    return endpointString(typeof e === 'function' ? await e() : e)
  }

  /** Static credentials, resolving (and caching) a provider function. */
  async _credentials() {
    const c = this.#credentials
    if (c === undefined || c === null) return null
    if (typeof c !== 'function') return c
    const cached = this.#creds
    const now = Date.now()
    if (cached && (!cached.expiration || cached.expiration.getTime() - REFRESH_BEFORE_EXPIRY_MS > now)) return cached
    if (!this.#credsPending) {
      this.#credsPending = Promise.resolve()
        .then(() => c())
        .then(
          (v) => {
            this.#credsPending = null
            if (!v || typeof v.accessKeyId !== 'string' || typeof v.secretAccessKey !== 'string') {
              throw new errorClasses.CredentialsProviderError({
                message: 'the credentials provider returned no accessKeyId/secretAccessKey',
                code: 'Credentials',
              })
            }
            const expiration = v.expiration === undefined || v.expiration === null ? undefined : new Date(v.expiration)
            this.#creds = { ...v, expiration }
            return this.#creds
          },
          (err) => {
            this.#credsPending = null
            throw err
          },
        )
    }
    return this.#credsPending
  }

  /** The built native client when using it needs no await (credentials fixed, not destroyed). */
  _readyNative() {
    return this._native && typeof this.#credentials !== 'function' ? this._native : undefined
  }

  /** The native client for the current settings; rebuilt when provider credentials change. */
  async _client() {
    const ready = this._readyNative()
    if (ready) return ready
    const fromProvider = typeof this.#credentials === 'function'
    const creds = await this._credentials()
    const key = creds ? `${creds.accessKeyId}\0${creds.secretAccessKey}\0${creds.sessionToken ?? ''}` : ''
    if (this._native && key === this.#nativeKey) return this._native
    if (this._native && fromProvider) {
      // Rotated credentials: the same native client signs with them from now on, keeping
      // its connection pool and retry quota.
      if (creds.sessionToken !== undefined && creds.sessionToken !== null && typeof creds.sessionToken !== 'string') {
        throw configError('sessionToken', 'must be a string')
      }
      this._native.setCredentials(creds.accessKeyId, creds.secretAccessKey, creds.sessionToken ?? null, creds.expiration?.getTime() ?? null)
      this.#nativeKey = key
      return this._native
    }
    const cfg = this._settings
    let maxAttempts = cfg.maxAttempts
    let retryMode = cfg.retryMode
    if (typeof maxAttempts === 'function') maxAttempts = await maxAttempts()
    if (typeof retryMode === 'function') retryMode = await retryMode()
    const region = await this._region()
    const endpoint = await this._endpoint()
    // Another call may have built it while this one waited: one native client (one pool, one
    // retry quota), not one a concurrent first call.
    if (this._native && key === this.#nativeKey) return this._native
    return this._buildNative(region, endpoint, creds, key, maxAttempts, retryMode)
  }

  /**
   * The native client, built synchronously (for `UsageMeter`). The meter keeps the core client
   * for its background sends, so every setting must be a value: a provider function would be
   * resolved once and never refreshed.
   */
  _nativeSync() {
    const cfg = this._settings
    for (const k of ['region', 'endpoint', 'maxAttempts', 'retryMode']) {
      if (typeof cfg[k] === 'function') {
        throw configError(`client.${k}`, 'must be a value, not a provider function, for a UsageMeter (it keeps the client for its background sends)')
      }
    }
    if (typeof this.#credentials === 'function') {
      throw configError(
        'client.credentials',
        'a provider function cannot be refreshed by a UsageMeter (it keeps the client for its background sends): ' +
          'omit credentials to use the standard chain (environment, profiles, web identity, ECS, IMDS), which the core refreshes, or pass static credentials',
      )
    }
    if (this._native) return this._native
    const creds = this.#credentials ?? null
    const key = creds ? `${creds.accessKeyId}\0${creds.secretAccessKey}\0${creds.sessionToken ?? ''}` : ''
    return this._buildNative(cfg.region, endpointString(cfg.endpoint), creds, key, cfg.maxAttempts, cfg.retryMode)
  }

  _buildNative(region, endpoint, creds, key, maxAttempts, retryMode) {
    const cfg = this._settings
    const handler = cfg.requestHandler && typeof cfg.requestHandler === 'object' ? cfg.requestHandler : {}
    const options = {
      region,
      endpoint,
      accessKeyId: creds?.accessKeyId,
      secretAccessKey: creds?.secretAccessKey,
      sessionToken: creds?.sessionToken,
      profile: cfg.profile,
      maxAttempts,
      retryMode,
      connectTimeoutMs: cfg.connectionTimeout ?? handler.connectionTimeout,
      readTimeoutMs: cfg.requestTimeout ?? handler.requestTimeout,
      attemptTimeoutMs: cfg.requestTimeout ?? handler.requestTimeout,
      operationTimeoutMs: cfg.operationTimeout,
      useFips: cfg.useFipsEndpoint,
      useDualStack: cfg.useDualstackEndpoint,
      caBundle: cfg.caBundle,
      // As Node itself does for its own TLS: added to the roots, never replacing them.
      extraCaBundle: process.env.NODE_EXTRA_CA_CERTS || undefined,
      httpsProxy: cfg.httpsProxy,
      httpProxy: cfg.httpProxy,
      noProxy: cfg.noProxy,
      appId: cfg.userAgentAppId,
      packageVersion: PACKAGE_VERSION,
    }
    // Only the types are checked here; values and ranges are the core's to judge, as in
    // every face.
    for (const k of ['region', 'endpoint', 'profile', 'retryMode', 'accessKeyId', 'secretAccessKey', 'sessionToken', 'caBundle', 'httpsProxy', 'httpProxy', 'noProxy', 'appId']) {
      if (options[k] !== undefined && options[k] !== null && typeof options[k] !== 'string') throw settingError(k, 'must be a string')
    }
    for (const k of ['maxAttempts', 'connectTimeoutMs', 'readTimeoutMs', 'operationTimeoutMs']) {
      if (options[k] !== undefined && options[k] !== null && (typeof options[k] !== 'number' || Number.isNaN(options[k]))) throw settingError(k, 'must be a number')
    }
    for (const k of ['useFips', 'useDualStack']) {
      if (options[k] !== undefined && options[k] !== null && typeof options[k] !== 'boolean') throw settingError(k, 'must be a boolean')
    }
    if (options.maxAttempts !== undefined && options.maxAttempts !== null && !Number.isInteger(options.maxAttempts)) throw settingError('maxAttempts', 'must be an integer')
    try {
      this._native = new native.NativeClient(options)
    } catch (err) {
      throw translateError(err)
    }
    this.#nativeKey = key
    return this._native
  }

  /**
   * Sends a command; resolves with its output (with `$metadata`) or rejects with an instance
   * of `MarketplaceMeteringServiceException` / `MarketplaceMeteringError` subclasses.
   */
  send(command, optionsOrCb, cb) {
    const callback = typeof optionsOrCb === 'function' ? optionsOrCb : cb
    const options = typeof optionsOrCb === 'object' && optionsOrCb !== null ? optionsOrCb : {}
    const p = this._send(command, options.abortSignal)
    if (typeof callback === 'function') {
      // As SDK v3: what the callback throws is its own, never an unhandled rejection (which
      // ends the process under Node's default).
      p.then((out) => callback(null, out), (err) => callback(err)).catch(() => {})
      return undefined
    }
    return p
  }

  async _send(command, abortSignal) {
    const op = command?.constructor
    if (!(command instanceof Command) || typeof op.nativeMethod !== 'string') {
      throw new TypeError('send() expects a marketplace-metering command (e.g. new BatchMeterUsageCommand(input))')
    }
    // SDK v3's abortSignal: checked before the call starts; an abort while it runs rejects at
    // once and cancels the call in the core (the attempt's connection is dropped, no retry
    // follows). A request the server already received may still have been processed.
    if (abortSignal?.aborted) throw abortError()
    // A built client whose credentials cannot change is used as is: no await, no promise.
    const client = this._readyNative() ?? (await this._client())
    if (abortSignal?.aborted) throw abortError()
    let json
    try {
      const encoded = op.encode(command.input)
      if (abortSignal) {
        const cancel = new native.CallCancel()
        const call = client[op.nativeMethod](command.input, cancel, encoded)
        json = await raceAbort(call, abortSignal, () => cancel.cancel())
      } else {
        json = await client[op.nativeMethod](command.input, null, encoded)
      }
    } catch (err) {
      if (err?.name === 'AbortError') throw err
      const e = translateError(err)
      logAttempts(this._settings.logger, e?.$attemptLog)
      throw e
    }
    const out = outputs[op.operation](JSON.parse(json))
    logAttempts(this._settings.logger, out.$metadata?.attemptLog)
    return withMetadata(out)
  }

  /**
   * The configuration the core resolved from this client's settings, the environment and the
   * shared config file: region, endpoint, useFipsEndpoint, useDualstackEndpoint, maxAttempts,
   * retryMode, userAgentAppId, caBundle, httpsProxy / httpProxy (passwords as `***`), noProxy,
   * profile, and `origins` saying where each came from (`code`, `env:AWS_REGION`,
   * `profile:dev:region`, `default`).
   */
  async resolvedConfig() {
    const client = await this._client()
    return JSON.parse(client.resolvedConfig())
  }

  /**
   * Closes the connection pool, as SDK v3's destroy() closes its sockets: calls in flight
   * finish on theirs, and a later call opens a new pool (a client destroyed in a `finally`
   * and used again keeps working, as with SDK v3).
   */
  destroy() {
    if (this._native) this._native.close()
  }
}

/** The aggregated client: one method per operation. */
class MarketplaceMetering extends MarketplaceMeteringClient {}
for (const [method, Cmd] of [
  ['batchMeterUsage', BatchMeterUsageCommand],
  ['meterUsage', MeterUsageCommand],
  ['resolveCustomer', ResolveCustomerCommand],
  ['registerUsage', RegisterUsageCommand],
]) {
  Object.defineProperty(MarketplaceMetering.prototype, method, {
    value: function (input, optionsOrCb, cb) {
      return this.send(new Cmd(input), optionsOrCb, cb)
    },
    writable: true,
    configurable: true,
  })
}

// ---- usage meter ---------------------------------------------------------------------------

/**
 * A clock set by hand (native), for tests and examples: `new ManualClock(dateOrEpochSeconds?)`,
 * `set(dateOrEpochSeconds)`, `advance(seconds)`, `now()` → `Date`. The meter reads it natively.
 */
const ManualClock = native.ManualClock

const RESOLVED = Promise.resolve()

const dateOrNull = (secs) => (typeof secs === 'number' ? new Date(secs * 1000) : null)

function rejectTranslated(err) {
  throw translateError(err)
}

function customerFields(n, out) {
  if (n.customerIdentifier != null) out.customerIdentifier = n.customerIdentifier
  if (n.customerAwsAccountId != null) {
    out.customerAwsAccountId = n.customerAwsAccountId
    out.licenseArn = n.licenseArn
  }
  return out
}

function meterEvent(n) {
  const ev = customerFields(n, { kind: n.kind })
  ev.dimension = n.dimension
  ev.hour = dateOrNull(n.hour)
  ev.quantity = n.quantity
  if (n.replicaId != null) ev.replicaId = n.replicaId
  // A dead letter's Status or error; an expired hour's OutcomeUnknown when it was sent before.
  if (n.reason != null) {
    ev.reason = n.reason
    ev.message = n.message
  }
  switch (n.kind) {
    case 'acked':
      ev.meteringRecordId = n.meteringRecordId
      break
    case 'late_event':
      ev.countedInHour = dateOrNull(n.countedInHour)
      break
    case 'window_alarm':
      ev.windowEnd = dateOrNull(n.windowEnd)
      break
  }
  return ev
}

function flushSummary(s) {
  return {
    sealed: s.sealed,
    sent: s.sent,
    calls: s.calls,
    acked: s.acked,
    deadLettered: s.deadLettered,
    expired: s.expired,
    resentUnprocessed: s.resentUnprocessed,
    deferred: s.deferred,
    // A retryable failure (throttling, transport) that stopped the flush early; the buckets
    // stay sealed for the next flush. Not a rejection: the flush did what it could.
    interrupted: s.interrupted ? errorFromDetail(JSON.parse(s.interrupted)) : null,
  }
}

function meterStatus(s) {
  return {
    pending: s.pending,
    sealed: s.sealed,
    acked: s.acked,
    deadLettered: s.deadLettered,
    expired: s.expired,
    oldestUnsentHour: dateOrNull(s.oldestUnsentHour),
    replicaId: s.replicaId ?? null,
    lastFlushAt: dateOrNull(s.lastFlushAt),
    lastFlushError: s.lastFlushError ?? null,
  }
}

function deadLetter(d) {
  const out = customerFields(d, {})
  out.dimension = d.dimension
  out.hour = dateOrNull(d.hour)
  out.quantity = d.quantity
  out.reason = d.reason
  out.message = d.message
  out.at = dateOrNull(d.at)
  return out
}


// `record()`'s common shape: a plain object with exactly a string customerIdentifier, a string
// dimension and a number quantity. Its members go to the addon as arguments, which skips
// napi's key listing and property gets (most of a record's cost); both ways apply the same
// rules with the same errors. Every other input takes the general conversion.
// Each member is read once (a getter may answer differently the second time): when the shape
// holds, the values read are left in `plain` for the caller to pass on at once (no caller code
// runs in between, so a getter calling record() itself cannot change them).
const plain = { customerIdentifier: '', dimension: '', quantity: 0 }
function isPlainRecord(o) {
  if (typeof o !== 'object' || o === null || Object.getPrototypeOf(o) !== Object.prototype) return false
  let n = 0
  for (const k in o) {
    if (k !== 'customerIdentifier' && k !== 'dimension' && k !== 'quantity') return false
    n++
  }
  if (n !== 3) return false
  const c = o.customerIdentifier
  const d = o.dimension
  const q = o.quantity
  if (typeof c !== 'string' || typeof d !== 'string' || typeof q !== 'number') return false
  plain.customerIdentifier = c
  plain.dimension = d
  plain.quantity = q
  return true
}
const kOpened = Symbol('UsageMeter.open')

/** The constructor's checks of its arguments: the native client and the clock. */
function meterArgs(client, options) {
  if (!(client instanceof MarketplaceMeteringClient)) {
    throw configError('client', 'must be a MarketplaceMeteringClient (or MarketplaceMetering)')
  }
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw configError('options', 'must be an object')
  }
  const clock = options.clock ?? null
  if (clock !== null && !(clock instanceof ManualClock)) throw configError('clock', 'must be a ManualClock')
  return { nativeClient: client._nativeSync(), clock }
}

/**
 * Records every billable event and bills every customer-hour exactly once (the core's
 * `UsageMeter`). An `EventEmitter`: `"acked"`, `"dead_lettered"`, `"late_event"`,
 * `"window_alarm"`, `"expired"`, and `"event"` for all of them.
 */
class UsageMeter extends EventEmitter {
  /**
   * @param {MarketplaceMeteringClient} client the client whose settings send the buckets.
   * @param {object} [options] path (none: in-memory store), productCode, mode
   *   ("batch" | "meter_usage"), durability ("durable" | "group" | "memory"), graceSeconds,
   *   zeroFill, powerLossSafe (default true: every commit of the SQLite store fsynced),
   *   flushIntervalSeconds (default 60; null or 0: no background flusher), clock,
   *   databaseUrl (the fleet store on PostgreSQL instead of path), replicaId, fleetSenders,
   *   fleetLeaseSeconds, startHour (the cut-over from a SQLite meter).
   */
  constructor(client, options = {}, opened = undefined) {
    super()
    if (opened != null && opened[kOpened] === true) {
      // From UsageMeter.open(): the native meter is open; events it emitted meanwhile are
      // replayed once the caller has had the meter (and added its listeners).
      opened.ref.meter = new WeakRef(this)
      this._attach(opened.native)
      if (opened.ref.early.length > 0) {
        const early = opened.ref.early
        setImmediate(() => {
          for (const n of early) this._dispatch(n)
        })
      }
      opened.ref.early = null
      return
    }
    const { nativeClient, clock } = meterArgs(client, options)
    // The event callback holds the meter weakly: the native side keeps the callback alive,
    // and must not keep an unclosed, unreachable meter alive with it.
    const self = new WeakRef(this)
    let nat
    try {
      nat = new native.NativeMeter(nativeClient, options, clock, (n) => self.deref()?._dispatch(n))
    } catch (err) {
      throw translateError(err)
    }
    this._attach(nat)
  }

  /**
   * As `new UsageMeter(client, options)`, but the store is opened (the fleet store's
   * database connected) off the JS thread: a database slow to answer does not block the
   * event loop. Bad options reject at once, with the constructor's errors.
   */
  static async open(client, options = {}) {
    // Called unbound (`const { open } = UsageMeter`): a UsageMeter, checked before the store
    // is opened (and locked).
    const Target = typeof this === 'function' && (this === UsageMeter || this.prototype instanceof UsageMeter)
      ? this
      : UsageMeter
    const { nativeClient, clock } = meterArgs(client, options)
    const ref = { meter: null, early: [] }
    const onEvent = (n) => {
      if (ref.early !== null) ref.early.push(n)
      else ref.meter?.deref()?._dispatch(n)
    }
    let nat
    try {
      nat = await native.NativeMeter.open(nativeClient, options, clock, onEvent)
    } catch (err) {
      throw translateError(err)
    }
    // A subclass's `open()` gives an instance of it (its constructor, which may not pass the
    // third argument on, is not run: the meter is already open).
    return Reflect.construct(UsageMeter, [client, options, { [kOpened]: true, native: nat, ref }], Target)
  }

  _attach(nat) {
    this._native = nat
    this._inline = this._native.inline
    // record()'s common shape on an inline meter: a bare function bound to the native meter.
    this._recordPlain = this._inline ? this._native.plainRecorder() : null
    this._closing = null
    if (this._inline) writeAtExit(this)
  }

  [inspect.custom](depth, options, inspectFn) {
    return `UsageMeter ${inspectFn({ closing: this._closing !== null }, options)}`
  }

  _dispatch(n) {
    if (n.kind == null) return // a barrier: flush()/close() settle after it
    const ev = meterEvent(n)
    this._emitSafely(ev.kind, ev)
    this._emitSafely('event', ev)
  }

  _emitSafely(name, ev) {
    try {
      this.emit(name, ev)
    } catch (err) {
      // A throwing listener: reported as Node reports one thrown from a timer, without
      // keeping the other listeners (or the meter) from their events.
      process.nextTick(() => {
        throw err
      })
    }
  }

  /**
   * Adds `quantity` of `dimension` for a customer to its hour's bucket; resolves once the event
   * is as durable as `durability` says. Bad input rejects with a `ValidationError` naming the field.
   */
  record(input) {
    if (this._inline) {
      let queued
      try {
        queued = isPlainRecord(input)
          ? this._recordPlain(plain.customerIdentifier, plain.dimension, plain.quantity)
          : this._native.recordNow(input)
      } catch (err) {
        return Promise.reject(translateError(err))
      }
      // A late event was queued: resolve after it was emitted, as the other calls do.
      return queued ? this._native.barrier() : RESOLVED
    }
    let p
    try {
      p = this._native.record(input)
    } catch (err) {
      return Promise.reject(translateError(err))
    }
    return p.then(undefined, rejectTranslated)
  }

  /** Registers a customer for zero-fill: `{ customerIdentifier | customerAwsAccountId + licenseArn, dimensions }`. */
  registerCustomer(input) {
    return this._call(() => this._native.registerCustomer(input)).then(() => undefined)
  }

  /**
   * Stops zero-filling a customer that churned: `{ customerIdentifier | customerAwsAccountId + licenseArn, dimensions? }`
   * (every dimension when `dimensions` is absent). Resolves with how many registrations were removed.
   */
  unregisterCustomer(input) {
    return this._call(() => this._native.unregisterCustomer(input))
  }

  /** Seals what may be sealed and sends every sealed hour; resolves with a summary after its events were emitted. */
  flush() {
    return this._call(() => this._native.flush()).then(flushSummary)
  }

  /** `{ pending, sealed, acked, deadLettered, expired, oldestUnsentHour, replicaId, lastFlushAt, lastFlushError }`. */
  status() {
    return this._call(() => this._native.status()).then(meterStatus)
  }

  /** Every bucket the service refused, oldest first. */
  deadLetters() {
    return this._call(() => this._native.deadLetters()).then((list) => list.map(deadLetter))
  }

  /**
   * Sends chosen dead letters again: `{ reason?, customerIdentifier? | customerAwsAccountId +
   * licenseArn, hour? }` (each left out matches all); those whose hour is still inside the
   * service's window go back to sealed and the next flush sends them. Resolves with how many.
   */
  requeue(filter) {
    return this._call(() => this._native.requeue(filter))
  }

  /**
   * Flushes what may be flushed and stops the meter (idempotent); later calls reject. After a
   * close whose final flush failed the store stays this meter's, and close() again flushes again.
   */
  close() {
    if (!this._closing) {
      const closing = this._call(() => this._native.close()).then(flushSummary)
      this._closing = closing
      closing.catch(() => {
        if (this._closing === closing) this._closing = null
      })
    }
    return this._closing
  }

  _call(f) {
    let p
    try {
      p = f()
    } catch (err) {
      return Promise.reject(translateError(err))
    }
    return p.then(undefined, rejectTranslated)
  }
}

// `durability: "memory"` buffers events in this process until a flush. A process that ends
// without close() (process.exit(), the event loop running dry) would lose them, as nothing
// asynchronous runs at exit: the 'exit' hook writes every live meter's buffer to its store,
// synchronously, as Python does at interpreter exit (meters in worker threads are written by
// the addon before the process ends). A crash (SIGKILL) still loses them, and so does a
// signal left to its default action (SIGTERM runs no 'exit' hook): handle it and close().
// (What a fleet meter kept after OutcomeUnknown is written by the addon's own exit hook.)
const atExit = new Set()
const atExitGone = new FinalizationRegistry((ref) => atExit.delete(ref))
let atExitHooked = false

function writeAtExit(meter) {
  const ref = new WeakRef(meter)
  atExit.add(ref)
  atExitGone.register(meter, ref)
  if (atExitHooked) return
  atExitHooked = true
  process.on('exit', () => {
    for (const ref of atExit) {
      const m = ref.deref()
      if (!m) continue
      try {
        m._native.writeBufferedSync()
      } catch (err) {
        process.stderr.write(`marketplace-metering: could not write a meter's buffered events at exit: ${err.message}\n`)
      }
    }
  })
}

if (typeof Symbol.asyncDispose === 'symbol') {
  Object.defineProperty(UsageMeter.prototype, Symbol.asyncDispose, {
    value: function () {
      return this.close().then(() => undefined)
    },
    writable: true,
    configurable: true,
  })
}

// ---- in-process emulator (tests) -----------------------------------------------------------

/**
 * Starts the local Metering Service emulator on 127.0.0.1 (a free port) inside this process.
 * The returned handle has what a client needs (`endpoint`, `region`, `credentials`) and test hooks.
 */
function startEmulator() {
  const emu = new native.NativeEmulator()
  const d = native.emulatorDefaults()
  return {
    endpoint: emu.endpoint,
    port: emu.port,
    region: d.region,
    credentials: { accessKeyId: d.accessKeyId, secretAccessKey: d.secretAccessKey },
    sessionCredentials: { accessKeyId: d.sessionAccessKeyId, secretAccessKey: d.sessionSecretAccessKey, sessionToken: d.sessionToken },
    productCode: d.productCode,
    customerAWSAccountId: d.customerAwsAccountId,
    licenseArn: d.licenseArn,
    ledger: () => JSON.parse(emu.ledgerJson()),
    requests: () => JSON.parse(emu.requestsJson()),
    pushFault: (fault) => emu.pushFaultJson(JSON.stringify(fault)),
    reset: () => emu.reset(),
    stop: () => emu.stop(),
  }
}

/** One row per core error code: `{ code, number, className, fault, kind, service }`. */
function errorCodes() {
  return ERROR_CODES.map((r) => ({ ...r }))
}

module.exports = {
  MarketplaceMeteringClient,
  MarketplaceMetering,
  Command,
  BatchMeterUsageCommand,
  MeterUsageCommand,
  ResolveCustomerCommand,
  RegisterUsageCommand,
  UsageMeter,
  ManualClock,
  UsageRecordResultStatus: Object.freeze({
    Success: 'Success',
    CustomerNotSubscribed: 'CustomerNotSubscribed',
    DuplicateRecord: 'DuplicateRecord',
  }),
  ...errorClasses,
  errorCodes,
  startEmulator,
  coreVersion: native.coreVersion(),
  VERSION: PACKAGE_VERSION,
}

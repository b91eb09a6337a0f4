// SPDX-License-Identifier: Apache-2.0
// marketplace-metering: an AWS SDK v3-shaped client over the Rust core (native.*.node).
'use strict'

const { readdirSync } = require('node:fs')
const { join } = require('node:path')

const PACKAGE_VERSION = require('./package.json').version

// ---- native addon ------------------------------------------------------------------------
// `npm install` builds `marketplace-metering.<platform>-<arch>[-abi].node` here from source.
function loadNative() {
  const prefix = `marketplace-metering.${process.platform}-${process.arch}`
  const candidates = readdirSync(__dirname)
    .filter((f) => f.startsWith(prefix) && f.endsWith('.node'))
    .sort()
  if (candidates.length === 0) {
    throw new Error(
      `marketplace-metering: no native addon for ${process.platform}-${process.arch} in ${__dirname}; ` +
        'run `npm install` (or `npm run build`) in the package directory to build it from source',
    )
  }
  return require(join(__dirname, candidates[0]))
}

const native = loadNative()

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
  const d = JSON.parse(err.nativeError)
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
  return e
}

// ---- outputs -------------------------------------------------------------------------------

const toDate = (secs) => (typeof secs === 'number' ? new Date(Math.round(secs * 1000)) : secs)

function withMetadata(out) {
  out.$metadata = metadata(out.$metadata ?? {})
  return out
}

const outputs = {
  BatchMeterUsage(out) {
    for (const r of out.Results) if (r.UsageRecord) r.UsageRecord.Timestamp = toDate(r.UsageRecord.Timestamp)
    for (const r of out.UnprocessedRecords) r.Timestamp = toDate(r.Timestamp)
    return out
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

function defineCommand(operation, method) {
  const name = `${operation}Command`
  const cls = {
    [name]: class extends Command {},
  }[name]
  Object.defineProperty(cls, 'operation', { value: operation })
  Object.defineProperty(cls, 'nativeMethod', { value: method })
  return cls
}

const BatchMeterUsageCommand = defineCommand('BatchMeterUsage', 'batchMeterUsage')
const MeterUsageCommand = defineCommand('MeterUsage', 'meterUsage')
const ResolveCustomerCommand = defineCommand('ResolveCustomer', 'resolveCustomer')
const RegisterUsageCommand = defineCommand('RegisterUsage', 'registerUsage')

// ---- client --------------------------------------------------------------------------------

const REFRESH_BEFORE_EXPIRY_MS = 5 * 60 * 1000

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

class MarketplaceMeteringClient {
  /**
   * @param {object} [config] region, endpoint, credentials (object or async provider),
   *   maxAttempts (all attempts), retryMode, requestTimeout / connectionTimeout (ms),
   *   useFipsEndpoint, profile.
   */
  constructor(config = {}) {
    if (config === null || typeof config !== 'object') throw configError('config', 'must be an object')
    this.config = { ...config }
    this._native = null
    this._nativeKey = null
    this._creds = null
    this._credsPending = null
    this._destroyed = false
  }

  async _region() {
    const r = this.config.region
    return typeof r === 'function' ? await r() : r
  }

  async _endpoint() {
    const e = this.config.endpoint
    return endpointString(typeof e === 'function' ? await e() : e)
  }

  /** Static credentials, resolving (and caching) a provider function. */
  async _credentials() {
    const c = this.config.credentials
    if (c === undefined || c === null) return null
    if (typeof c !== 'function') return c
    const cached = this._creds
    const now = Date.now()
    if (cached && (!cached.expiration || cached.expiration.getTime() - REFRESH_BEFORE_EXPIRY_MS > now)) return cached
    if (!this._credsPending) {
      this._credsPending = Promise.resolve()
        .then(() => c())
        .then(
          (v) => {
            this._credsPending = null
            if (!v || typeof v.accessKeyId !== 'string' || typeof v.secretAccessKey !== 'string') {
              throw new errorClasses.CredentialsProviderError({
                message: 'the credentials provider returned no accessKeyId/secretAccessKey',
                code: 'Credentials',
              })
            }
            const expiration = v.expiration === undefined || v.expiration === null ? undefined : new Date(v.expiration)
            this._creds = { ...v, expiration }
            return this._creds
          },
          (err) => {
            this._credsPending = null
            throw err
          },
        )
    }
    return this._credsPending
  }

  /** The native client for the current settings; rebuilt when provider credentials change. */
  async _client() {
    if (this._destroyed) throw new errorClasses.InvalidStateError({ message: 'the client has been destroyed', code: 'InvalidState' })
    const fromProvider = typeof this.config.credentials === 'function'
    if (this._native && !fromProvider) return this._native
    const creds = await this._credentials()
    const key = creds ? `${creds.accessKeyId}\0${creds.secretAccessKey}\0${creds.sessionToken ?? ''}` : ''
    if (this._native && key === this._nativeKey) return this._native
    const cfg = this.config
    const handler = cfg.requestHandler && typeof cfg.requestHandler === 'object' ? cfg.requestHandler : {}
    const options = {
      region: await this._region(),
      endpoint: await this._endpoint(),
      accessKeyId: creds?.accessKeyId,
      secretAccessKey: creds?.secretAccessKey,
      sessionToken: creds?.sessionToken,
      profile: cfg.profile,
      maxAttempts: cfg.maxAttempts,
      retryMode: cfg.retryMode,
      connectTimeoutMs: cfg.connectionTimeout ?? handler.connectionTimeout,
      readTimeoutMs: cfg.requestTimeout ?? handler.requestTimeout,
      useFips: cfg.useFipsEndpoint,
      packageVersion: PACKAGE_VERSION,
    }
    if (typeof options.maxAttempts === 'function') options.maxAttempts = await options.maxAttempts()
    if (typeof options.retryMode === 'function') options.retryMode = await options.retryMode()
    for (const k of ['region', 'endpoint', 'profile', 'retryMode', 'accessKeyId', 'secretAccessKey', 'sessionToken']) {
      if (options[k] !== undefined && options[k] !== null && typeof options[k] !== 'string') throw configError(k, 'must be a string')
    }
    for (const k of ['maxAttempts', 'connectTimeoutMs', 'readTimeoutMs']) {
      if (options[k] !== undefined && (typeof options[k] !== 'number' || !(options[k] > 0))) throw configError(k, 'must be a positive number')
    }
    if (options.maxAttempts !== undefined && !Number.isInteger(options.maxAttempts)) throw configError('maxAttempts', 'must be an integer')
    try {
      this._native = new native.NativeClient(options)
    } catch (err) {
      throw translateError(err)
    }
    this._nativeKey = key
    return this._native
  }

  /**
   * Sends a command; resolves with its output (with `$metadata`) or rejects with an instance
   * of `MarketplaceMeteringServiceException` / `MarketplaceMeteringError` subclasses.
   */
  send(command, optionsOrCb, cb) {
    const callback = typeof optionsOrCb === 'function' ? optionsOrCb : cb
    const p = this._send(command)
    if (typeof callback === 'function') {
      p.then((out) => callback(null, out), (err) => callback(err))
      return undefined
    }
    return p
  }

  async _send(command) {
    const op = command?.constructor
    if (!(command instanceof Command) || typeof op.nativeMethod !== 'string') {
      throw new TypeError('send() expects a marketplace-metering command (e.g. new BatchMeterUsageCommand(input))')
    }
    const client = await this._client()
    let json
    try {
      json = await client[op.nativeMethod](command.input)
    } catch (err) {
      throw translateError(err)
    }
    return withMetadata(outputs[op.operation](JSON.parse(json)))
  }

  /** Releases the client; later calls reject. In-flight calls finish. */
  destroy() {
    this._destroyed = true
    this._native = null
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

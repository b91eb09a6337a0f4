// SPDX-License-Identifier: Apache-2.0
// Public types of marketplace-metering, shaped as @aws-sdk/client-marketplace-metering's.
// Hand-written; __test__/types.test.cjs checks the error classes against the runtime table.

import { EventEmitter } from "node:events";

/** Response metadata, as SDK v3's `$metadata`. */
export interface ResponseMetadata {
  httpStatusCode?: number;
  requestId?: string;
  extendedRequestId?: string;
  cfId?: string;
  /** Attempts made, the first included. */
  attempts?: number;
  /** Milliseconds spent waiting between attempts. */
  totalRetryDelay?: number;
}

export interface MetadataBearer {
  $metadata: ResponseMetadata;
}

export interface AwsCredentialIdentity {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  expiration?: Date;
}

export type AwsCredentialIdentityProvider = () => Promise<AwsCredentialIdentity>;

export interface EndpointV2Like {
  protocol?: string;
  hostname: string;
  port?: number;
  path?: string;
}

export interface MarketplaceMeteringClientConfig {
  /** The AWS Region (or a provider of it). Defaults to AWS_REGION / the profile's region. */
  region?: string | (() => Promise<string>);
  /** A custom endpoint (the emulator, a VPC endpoint). */
  endpoint?: string | URL | EndpointV2Like | (() => Promise<string | URL | EndpointV2Like>);
  /** Static credentials or an async provider (re-resolved 5 minutes before `expiration`). Default: the standard chain. */
  credentials?: AwsCredentialIdentity | AwsCredentialIdentityProvider;
  /** All attempts per call, the first included (default 3). */
  maxAttempts?: number | (() => Promise<number>);
  /** `"standard"` (default), `"adaptive"` or `"legacy"` (boto3's: 5 attempts, no retry quota). */
  retryMode?: "standard" | "adaptive" | "legacy" | (() => Promise<"standard" | "adaptive" | "legacy">);
  /** Milliseconds allowed for one attempt: between two reads and for the whole response (defaults: 30000 between reads, 60000 in all). */
  requestTimeout?: number;
  /** Milliseconds allowed for a whole call, every retry included (default: no bound). */
  operationTimeout?: number;
  /** Milliseconds allowed to connect (default 5000). */
  connectionTimeout?: number;
  /** SDK v3's `requestHandler` options object (`requestTimeout`, `connectionTimeout`). */
  requestHandler?: { requestTimeout?: number; connectionTimeout?: number };
  /** Use the FIPS endpoint (else AWS_USE_FIPS_ENDPOINT, the profile's use_fips_endpoint). */
  useFipsEndpoint?: boolean;
  /** Use the dual-stack endpoint (else AWS_USE_DUALSTACK_ENDPOINT, the profile's use_dualstack_endpoint). */
  useDualstackEndpoint?: boolean;
  /** Shared config profile for the default chains (else AWS_PROFILE). */
  profile?: string;
  /** A PEM CA bundle trusted instead of the platform's roots (else AWS_CA_BUNDLE, the profile's ca_bundle). NODE_EXTRA_CA_CERTS is added to the roots. */
  caBundle?: string;
  /** The proxy for https endpoints (else HTTPS_PROXY / https_proxy). Not enumerable on `client.config`: logging it never shows the password. */
  httpsProxy?: string;
  /** The proxy for http endpoints (else HTTP_PROXY / http_proxy). Not enumerable on `client.config`: logging it never shows the password. */
  httpProxy?: string;
  /** Hosts reached without a proxy, comma-separated (else NO_PROXY / no_proxy). */
  noProxy?: string;
  /** The app id in the User-Agent (else AWS_SDK_UA_APP_ID, the profile's sdk_ua_app_id). */
  userAgentAppId?: string;
  /** SDK v3's logger interface: `debug` receives one {@link AttemptLogEntry} per attempt. */
  logger?: Logger;
}

/** SDK v3's `Logger`. */
export interface Logger {
  debug(...content: any[]): void;
  info(...content: any[]): void;
  warn(...content: any[]): void;
  error(...content: any[]): void;
}

/** What `logger.debug` receives for each attempt (nothing secret: no credentials or headers). */
export interface AttemptLogEntry {
  clientName: "MarketplaceMeteringClient";
  commandName: string;
  operation: string;
  attempt: number;
  status?: number;
  requestId?: string;
  latencyMs: number;
  /** `"ok"` or the error code. */
  outcome: string;
  /** `throttling`, `transient`, `timeout` or `clock skew`, when the attempt was retried. */
  retryReason?: string;
  retryDelayMs?: number;
}

/** `send()`'s options, as SDK v3's. */
export interface SendOptions {
  /** Rejects with an `AbortError` if aborted before the call starts or while waiting for it. */
  abortSignal?: AbortSignal;
  [key: string]: unknown;
}

/** `client.config`, as SDK v3's resolved config: `await client.config.region()`. */
export type ResolvedClientConfig = Omit<MarketplaceMeteringClientConfig, "region" | "useFipsEndpoint" | "useDualstackEndpoint" | "maxAttempts" | "retryMode" | "credentials"> & {
  region(): Promise<string>;
  useFipsEndpoint(): Promise<boolean>;
  useDualstackEndpoint(): Promise<boolean>;
  maxAttempts(): Promise<number>;
  retryMode(): Promise<"standard" | "adaptive" | "legacy">;
  credentials?: AwsCredentialIdentityProvider;
};

/** What the core resolved for a client (code, then environment, then shared config file). */
export interface ResolvedConfig {
  region: string;
  endpoint: string;
  useFipsEndpoint: boolean;
  useDualstackEndpoint: boolean;
  maxAttempts: number;
  retryMode: "standard" | "adaptive" | "legacy";
  userAgentAppId: string | null;
  userAgent: string;
  caBundle: string | null;
  httpsProxy: string | null;
  httpProxy: string | null;
  noProxy: string | null;
  profile: string;
  /** Where each setting came from: `code`, `env:<VARIABLE>`, `profile:<name>:<key>` or `default`. */
  origins: Record<string, string>;
}

// ---- model shapes ----

export interface Tag {
  Key: string | undefined;
  Value: string | undefined;
}

export interface UsageAllocation {
  AllocatedUsageQuantity: number | undefined;
  Tags?: Tag[];
}

/** A `Date`; epoch seconds (number) and ISO-8601 strings (`Z` or an offset such as `+02:00`) are accepted too. */
export type TimestampInput = Date | number | string;

export interface UsageRecord {
  Timestamp: Date | undefined;
  CustomerIdentifier?: string;
  Dimension: string | undefined;
  Quantity?: number;
  UsageAllocations?: UsageAllocation[];
  CustomerAWSAccountId?: string;
  LicenseArn?: string;
}

export interface UsageRecordInput extends Omit<UsageRecord, "Timestamp"> {
  Timestamp: TimestampInput | undefined;
}

export declare const UsageRecordResultStatus: {
  readonly Success: "Success";
  readonly CustomerNotSubscribed: "CustomerNotSubscribed";
  readonly DuplicateRecord: "DuplicateRecord";
};
export type UsageRecordResultStatus = (typeof UsageRecordResultStatus)[keyof typeof UsageRecordResultStatus];

export interface UsageRecordResult {
  UsageRecord?: UsageRecord;
  MeteringRecordId?: string;
  /** A known status, or a newer one passed through as a string. */
  Status?: UsageRecordResultStatus | (string & {});
}

export interface BatchMeterUsageRequest {
  UsageRecords: UsageRecordInput[] | undefined;
  ProductCode?: string;
}
export interface BatchMeterUsageResult {
  Results?: UsageRecordResult[];
  UnprocessedRecords?: UsageRecord[];
}

export interface MeterUsageRequest {
  ProductCode: string | undefined;
  Timestamp: TimestampInput | undefined;
  UsageDimension: string | undefined;
  UsageQuantity?: number;
  DryRun?: boolean;
  UsageAllocations?: UsageAllocation[];
  ClientToken?: string;
}
export interface MeterUsageResult {
  MeteringRecordId?: string;
}

export interface ResolveCustomerRequest {
  RegistrationToken: string | undefined;
}
export interface ResolveCustomerResult {
  CustomerIdentifier?: string;
  ProductCode?: string;
  CustomerAWSAccountId?: string;
  LicenseArn?: string;
}

export interface RegisterUsageRequest {
  ProductCode: string | undefined;
  PublicKeyVersion: number | undefined;
  Nonce?: string;
}
export interface RegisterUsageResult {
  PublicKeyRotationTimestamp?: Date;
  Signature?: string;
}

export type BatchMeterUsageCommandInput = BatchMeterUsageRequest;
export type BatchMeterUsageCommandOutput = BatchMeterUsageResult & MetadataBearer;
export type MeterUsageCommandInput = MeterUsageRequest;
export type MeterUsageCommandOutput = MeterUsageResult & MetadataBearer;
export type ResolveCustomerCommandInput = ResolveCustomerRequest;
export type ResolveCustomerCommandOutput = ResolveCustomerResult & MetadataBearer;
export type RegisterUsageCommandInput = RegisterUsageRequest;
export type RegisterUsageCommandOutput = RegisterUsageResult & MetadataBearer;

// ---- commands ----

/** Base of the four command classes. */
export declare abstract class Command<Input, Output> {
  readonly input: Input;
  /** Phantom: the output type `send()` resolves with. */
  protected readonly __output?: Output;
  constructor(input: Input);
}

export declare class BatchMeterUsageCommand extends Command<BatchMeterUsageCommandInput, BatchMeterUsageCommandOutput> {}
export declare class MeterUsageCommand extends Command<MeterUsageCommandInput, MeterUsageCommandOutput> {}
export declare class ResolveCustomerCommand extends Command<ResolveCustomerCommandInput, ResolveCustomerCommandOutput> {}
export declare class RegisterUsageCommand extends Command<RegisterUsageCommandInput, RegisterUsageCommandOutput> {}

export type ServiceInputTypes =
  | BatchMeterUsageCommandInput
  | MeterUsageCommandInput
  | ResolveCustomerCommandInput
  | RegisterUsageCommandInput;
export type ServiceOutputTypes =
  | BatchMeterUsageCommandOutput
  | MeterUsageCommandOutput
  | ResolveCustomerCommandOutput
  | RegisterUsageCommandOutput;

type Callback<T> = (err: unknown, data?: T) => void;

// ---- clients ----

export declare class MarketplaceMeteringClient {
  /** SDK v3's resolved config: the settings, with these as providers of what the core resolved. */
  readonly config: ResolvedClientConfig;
  constructor(config?: MarketplaceMeteringClientConfig);
  send<I, O>(command: Command<I, O>, options?: SendOptions): Promise<O>;
  send<I, O>(command: Command<I, O>, cb: Callback<O>): void;
  send<I, O>(command: Command<I, O>, options: SendOptions, cb: Callback<O>): void;
  /** What the core resolved from the settings, the environment and the shared config file. */
  resolvedConfig(): Promise<ResolvedConfig>;
  destroy(): void;
}

export declare class MarketplaceMetering extends MarketplaceMeteringClient {
  batchMeterUsage(args: BatchMeterUsageCommandInput, options?: Record<string, unknown>): Promise<BatchMeterUsageCommandOutput>;
  batchMeterUsage(args: BatchMeterUsageCommandInput, cb: Callback<BatchMeterUsageCommandOutput>): void;
  meterUsage(args: MeterUsageCommandInput, options?: Record<string, unknown>): Promise<MeterUsageCommandOutput>;
  meterUsage(args: MeterUsageCommandInput, cb: Callback<MeterUsageCommandOutput>): void;
  resolveCustomer(args: ResolveCustomerCommandInput, options?: Record<string, unknown>): Promise<ResolveCustomerCommandOutput>;
  resolveCustomer(args: ResolveCustomerCommandInput, cb: Callback<ResolveCustomerCommandOutput>): void;
  registerUsage(args: RegisterUsageCommandInput, options?: Record<string, unknown>): Promise<RegisterUsageCommandOutput>;
  registerUsage(args: RegisterUsageCommandInput, cb: Callback<RegisterUsageCommandOutput>): void;
}

// ---- usage meter ----

/** A clock set by hand, for tests and examples: hours seal when it is moved, not when real time passes. */
export declare class ManualClock {
  /** A clock reading `at` (a `Date`, epoch seconds or an ISO-8601 string); default: now. */
  constructor(at?: Date | number | string);
  /** Sets the clock (a `Date`, epoch seconds or an ISO-8601 string). */
  set(at: Date | number | string): void;
  /** Moves the clock by a whole number of seconds (negative moves it back). */
  advance(seconds: number): void;
  /** The time it reads. */
  now(): Date;
}

export interface UsageMeterOptions {
  /** The SQLite file (created when missing). Absent: an in-memory store (tests; nothing survives the process). */
  path?: string;
  /** The product code; required for `customerIdentifier` customers and the `meter_usage` mode. */
  productCode?: string;
  /** `"batch"` (BatchMeterUsage, default) or `"meter_usage"` (MeterUsage, AMI/container products). */
  mode?: "batch" | "meter_usage";
  /** When `record()` resolves: `"durable"` (default, committed), `"group"` (group commit), `"memory"` (buffered). */
  durability?: "durable" | "group" | "memory";
  /** Seconds after an hour's end before it is sealed (default 300); at most 14400 (the service's window less two hours, so an hour is left to send in). */
  graceSeconds?: number;
  /** Report 0 for the hours of registered customers without usage. */
  zeroFill?: boolean;
  /**
   * The SQLite store: `true` (default) fsyncs every commit, which survives the machine losing
   * power; `false` commits without an fsync (SQLite's `synchronous=NORMAL` in WAL mode): a
   * commit survives the process being killed, but the last commits before the machine itself
   * fails may be lost, and commits are several times faster. For a store on a disk that does
   * not outlive its machine (a container's ephemeral storage) `true` protects nothing. The
   * fleet store refuses `false`: its commits are as durable as the database makes them.
   */
  powerLossSafe?: boolean;
  /**
   * Background flush every this many seconds (default 60, at most 1800: window alarms are
   * raised by flushes); `null` or `0`: none.
   */
  flushIntervalSeconds?: number | null;
  /** A hand-set clock (tests, examples). */
  clock?: ManualClock | null;
  /** The fleet store instead of `path`: `"postgresql://user@host:5432/db"`, one PostgreSQL shared by every replica; each customer-hour is billed once across the fleet. */
  databaseUrl?: string;
  /** This writer's name in the fleet store (default: host name and pid). */
  replicaId?: string;
  /** Fleet store: how many replicas send at a time per product (default 1: the fleet calls the service at the rate one meter does). */
  fleetSenders?: number;
  /** Fleet store: seconds a sender's claim lasts (default 120, at most 1800); a dead sender's buckets are sent again, identical, by another replica after it. */
  fleetLeaseSeconds?: number;
  /** Fleet store: the cut-over from a SQLite meter, the first hour this store counts (rounded down). Before it every event, and after it an event of an earlier hour still within its grace, are refused naming `timestamp` (they belong to the SQLite meter); a late event of an earlier hour is counted in the current hour. */
  startHour?: Date | number | string;
}

/** Who an event is for: a `customerIdentifier`, or a `customerAwsAccountId` with its `licenseArn`. */
export type MeterCustomer =
  | { customerIdentifier: string; customerAwsAccountId?: undefined; licenseArn?: undefined }
  | { customerIdentifier?: undefined; customerAwsAccountId: string; licenseArn: string };

export type MeterRecordInput = (MeterCustomer | { customerIdentifier?: undefined; customerAwsAccountId?: undefined; licenseArn?: undefined }) & {
  dimension: string;
  /** A non-negative integer. */
  quantity: number;
  /** When the usage happened (default: now); its hour is the bucket's. */
  timestamp?: Date | number | string;
  /** Must sum to `quantity`. */
  allocations?: UsageAllocation[];
};

export type RegisterCustomerInput = MeterCustomer & { dimensions: string[] };

/** `dimensions` absent: every dimension registered for the customer. */
export type UnregisterCustomerInput = MeterCustomer & { dimensions?: string[] };

interface MeterEventBase {
  customerIdentifier?: string;
  customerAwsAccountId?: string;
  licenseArn?: string;
  dimension: string;
  /** The bucket's hour (for a late event, the event's own hour). */
  hour: Date;
  /** The bucket's quantity (for a late event, the event's quantity). */
  quantity: number;
  /** On the fleet store (`databaseUrl`), the `replicaId` of the meter that emitted the event; absent on a local store. */
  replicaId?: string;
}

export interface AckedEvent extends MeterEventBase {
  kind: "acked";
  meteringRecordId: string;
}
export interface DeadLetteredEvent extends MeterEventBase {
  kind: "dead_lettered";
  /** Why: the per-record Status (`CustomerNotSubscribed`, `DuplicateRecord`) or the error code;
   * the dead letter's `reason` and `requeue({ reason })`'s filter. */
  reason: string;
  message: string;
}
export interface LateEvent extends MeterEventBase {
  kind: "late_event";
  /** The hour the quantity was counted in instead. */
  countedInHour: Date;
}
export interface WindowAlarmEvent extends MeterEventBase {
  kind: "window_alarm";
  /** When the service stops accepting the bucket. */
  windowEnd: Date;
}
export interface ExpiredEvent extends MeterEventBase {
  kind: "expired";
  /** `"OutcomeUnknown"` when an earlier send of the bucket got no answer: the service may have
   * metered it then (check its records before billing it another way); absent when every
   * earlier send, if any, was answered (refused or throttled). */
  reason?: "OutcomeUnknown";
  message?: string;
}
export type MeterEvent = AckedEvent | DeadLetteredEvent | LateEvent | WindowAlarmEvent | ExpiredEvent;

export interface MeterEventMap {
  acked: [AckedEvent];
  dead_lettered: [DeadLetteredEvent];
  late_event: [LateEvent];
  window_alarm: [WindowAlarmEvent];
  expired: [ExpiredEvent];
  event: [MeterEvent];
}

export interface FlushSummary {
  /** Buckets sealed by this flush. */
  sealed: number;
  /** Records sent (re-sends included). */
  sent: number;
  /** Calls made. */
  calls: number;
  acked: number;
  deadLettered: number;
  expired: number;
  /** Records the service left unprocessed and that were sent again. */
  resentUnprocessed: number;
  /** Buckets left for a later flush. */
  deferred: number;
  /** The retryable error (throttling, transport) that stopped the flush early, or `null`; the buckets stay sealed. */
  interrupted: MarketplaceMeteringServiceException | MarketplaceMeteringError | null;
}

export interface MeterStatus {
  pending: number;
  sealed: number;
  acked: number;
  deadLettered: number;
  expired: number;
  oldestUnsentHour: Date | null;
  /** On the fleet store, this meter's `replicaId` (the counts are the whole fleet's for the product); `null` on a local store. */
  replicaId: string | null;
  /** When this meter's last flush ended (the caller's, `close()`'s or the background flusher's), by the meter's clock; `null` before the first. */
  lastFlushAt: Date | null;
  /**
   * `"Code: message"` of what failed or stopped this meter's last flush (an error, or throttling, a transport failure);
   * `null` when it went well. A background flush has no caller to reject: a health check reads it here.
   */
  lastFlushError: string | null;
}

export interface DeadLetter {
  customerIdentifier?: string;
  customerAwsAccountId?: string;
  licenseArn?: string;
  dimension: string;
  hour: Date;
  quantity: number;
  /** The Status or error code. */
  reason: string;
  message: string;
  /** When it was dead-lettered. */
  at: Date;
}

/** Which dead letters `UsageMeter.requeue` sends again; what is left out matches all. */
export interface RequeueFilter {
  /** `"CustomerNotSubscribed"`, an error code, … */
  reason?: string;
  customerIdentifier?: string;
  customerAwsAccountId?: string;
  licenseArn?: string;
  /** Any time within the hour (a `Date`, epoch seconds, or an ISO-8601 string). */
  hour?: Date | number | string;
}

/**
 * Records every billable event and bills every customer-hour exactly once. Events are emitted
 * on the JS thread, in order; `flush()` and `close()` resolve after the events they caused.
 */
export declare class UsageMeter extends EventEmitter<MeterEventMap> {
  constructor(client: MarketplaceMeteringClient, options?: UsageMeterOptions);
  /**
   * As the constructor, but the store is opened (the fleet store's database connected) off
   * the JS thread, so a slow database does not block the event loop; bad options reject.
   */
  static open<T extends UsageMeter>(this: new (client: MarketplaceMeteringClient, options?: UsageMeterOptions) => T, client: MarketplaceMeteringClient, options?: UsageMeterOptions): Promise<T>;
  /** Resolves once the event is as durable as `durability` says; bad input rejects with a `ValidationError`. */
  record(input: MeterRecordInput): Promise<void>;
  /** Registers a customer's dimensions for zero-fill. */
  registerCustomer(input: RegisterCustomerInput): Promise<void>;
  /**
   * Stops zero-filling a customer that churned: no zero is made for an hour not zero-filled yet
   * (usage recorded is still sent). Resolves with how many registrations were removed.
   */
  unregisterCustomer(input: UnregisterCustomerInput): Promise<number>;
  /** Seals what may be sealed and sends every sealed hour. */
  flush(): Promise<FlushSummary>;
  status(): Promise<MeterStatus>;
  deadLetters(): Promise<DeadLetter[]>;
  /**
   * Sends chosen dead letters again (those whose hour is still inside the service's window go
   * back to sealed; the next flush sends them). Resolves with how many.
   */
  requeue(filter?: RequeueFilter): Promise<number>;
  /** Flushes what may be flushed and stops (idempotent); later calls reject with `InvalidStateError`. */
  close(): Promise<FlushSummary>;
  [Symbol.asyncDispose](): Promise<void>;
}

// ---- errors ----

export interface ExceptionOptions {
  message: string;
  name?: string;
  code?: string;
  $fault?: "client" | "server";
  $metadata?: ResponseMetadata;
  field?: string;
  retryable?: boolean;
}

/** Base of every exception the service answered with; unknown service codes are instances of it. */
export declare class MarketplaceMeteringServiceException extends Error {
  readonly $fault: "client" | "server";
  $metadata: ResponseMetadata;
  /** SDK v3's: set when the error may be retried. */
  readonly $retryable?: { throttling: boolean };
  /** SDK v3's: the service's response (status and headers), when it answered. */
  readonly $response?: { statusCode: number; headers: Record<string, string>; body: undefined };
  /** The core's ErrorCode string (`"ThrottlingException"`, `"Unhandled"` for unknown codes). */
  readonly code: string;
  readonly retryable?: boolean;
  /** For `code === "Unhandled"`: the service's code (also the `name`). */
  readonly serviceCode?: string;
  constructor(opts: ExceptionOptions);
}

/** Base of the errors raised on this side of the wire (invalid input, network, timeouts, config). */
export declare class MarketplaceMeteringError extends Error {
  readonly $fault: "client" | "server";
  $metadata: ResponseMetadata;
  /** The core's ErrorCode string (`"InvalidInput"`, `"ReadTimeout"`, …). */
  readonly code: string;
  readonly field?: string;
  readonly retryable?: boolean;
  /** SDK v3's: set when the error may be retried. */
  readonly $retryable?: { throttling: boolean };
  /** SDK v3's: the service's response (status and headers), when it answered. */
  readonly $response?: { statusCode: number; headers: Record<string, string>; body: undefined };
  constructor(opts: ExceptionOptions);
}

// <generated by tools/gen-errors.cjs from the core's error-code table: do not edit>
/** The service answered `InternalServiceErrorException`. */
export declare class InternalServiceErrorException extends MarketplaceMeteringServiceException {
  readonly name: "InternalServiceErrorException";
  readonly $fault: "server";
  readonly code: "InternalServiceErrorException";
  constructor(opts: ExceptionOptions);
}

/** The service answered `InvalidProductCodeException`. */
export declare class InvalidProductCodeException extends MarketplaceMeteringServiceException {
  readonly name: "InvalidProductCodeException";
  readonly $fault: "client";
  readonly code: "InvalidProductCodeException";
  constructor(opts: ExceptionOptions);
}

/** The service answered `InvalidUsageDimensionException`. */
export declare class InvalidUsageDimensionException extends MarketplaceMeteringServiceException {
  readonly name: "InvalidUsageDimensionException";
  readonly $fault: "client";
  readonly code: "InvalidUsageDimensionException";
  constructor(opts: ExceptionOptions);
}

/** The service answered `InvalidTagException`. */
export declare class InvalidTagException extends MarketplaceMeteringServiceException {
  readonly name: "InvalidTagException";
  readonly $fault: "client";
  readonly code: "InvalidTagException";
  constructor(opts: ExceptionOptions);
}

/** The service answered `InvalidUsageAllocationsException`. */
export declare class InvalidUsageAllocationsException extends MarketplaceMeteringServiceException {
  readonly name: "InvalidUsageAllocationsException";
  readonly $fault: "client";
  readonly code: "InvalidUsageAllocationsException";
  constructor(opts: ExceptionOptions);
}

/** The service answered `InvalidCustomerIdentifierException`. */
export declare class InvalidCustomerIdentifierException extends MarketplaceMeteringServiceException {
  readonly name: "InvalidCustomerIdentifierException";
  readonly $fault: "client";
  readonly code: "InvalidCustomerIdentifierException";
  constructor(opts: ExceptionOptions);
}

/** The service answered `TimestampOutOfBoundsException`. */
export declare class TimestampOutOfBoundsException extends MarketplaceMeteringServiceException {
  readonly name: "TimestampOutOfBoundsException";
  readonly $fault: "client";
  readonly code: "TimestampOutOfBoundsException";
  constructor(opts: ExceptionOptions);
}

/** The service answered `ThrottlingException`. */
export declare class ThrottlingException extends MarketplaceMeteringServiceException {
  readonly name: "ThrottlingException";
  readonly $fault: "client";
  readonly code: "ThrottlingException";
  constructor(opts: ExceptionOptions);
}

/** The service answered `DisabledApiException`. */
export declare class DisabledApiException extends MarketplaceMeteringServiceException {
  readonly name: "DisabledApiException";
  readonly $fault: "client";
  readonly code: "DisabledApiException";
  constructor(opts: ExceptionOptions);
}

/** The service answered `InvalidLicenseException`. */
export declare class InvalidLicenseException extends MarketplaceMeteringServiceException {
  readonly name: "InvalidLicenseException";
  readonly $fault: "client";
  readonly code: "InvalidLicenseException";
  constructor(opts: ExceptionOptions);
}

/** The service answered `InvalidEndpointRegionException`. */
export declare class InvalidEndpointRegionException extends MarketplaceMeteringServiceException {
  readonly name: "InvalidEndpointRegionException";
  readonly $fault: "client";
  readonly code: "InvalidEndpointRegionException";
  constructor(opts: ExceptionOptions);
}

/** The service answered `DuplicateRequestException`. */
export declare class DuplicateRequestException extends MarketplaceMeteringServiceException {
  readonly name: "DuplicateRequestException";
  readonly $fault: "client";
  readonly code: "DuplicateRequestException";
  constructor(opts: ExceptionOptions);
}

/** The service answered `IdempotencyConflictException`. */
export declare class IdempotencyConflictException extends MarketplaceMeteringServiceException {
  readonly name: "IdempotencyConflictException";
  readonly $fault: "client";
  readonly code: "IdempotencyConflictException";
  constructor(opts: ExceptionOptions);
}

/** The service answered `CustomerNotEntitledException`. */
export declare class CustomerNotEntitledException extends MarketplaceMeteringServiceException {
  readonly name: "CustomerNotEntitledException";
  readonly $fault: "client";
  readonly code: "CustomerNotEntitledException";
  constructor(opts: ExceptionOptions);
}

/** The service answered `InvalidRegionException`. */
export declare class InvalidRegionException extends MarketplaceMeteringServiceException {
  readonly name: "InvalidRegionException";
  readonly $fault: "client";
  readonly code: "InvalidRegionException";
  constructor(opts: ExceptionOptions);
}

/** The service answered `InvalidPublicKeyVersionException`. */
export declare class InvalidPublicKeyVersionException extends MarketplaceMeteringServiceException {
  readonly name: "InvalidPublicKeyVersionException";
  readonly $fault: "client";
  readonly code: "InvalidPublicKeyVersionException";
  constructor(opts: ExceptionOptions);
}

/** The service answered `PlatformNotSupportedException`. */
export declare class PlatformNotSupportedException extends MarketplaceMeteringServiceException {
  readonly name: "PlatformNotSupportedException";
  readonly $fault: "client";
  readonly code: "PlatformNotSupportedException";
  constructor(opts: ExceptionOptions);
}

/** The service answered `InvalidTokenException`. */
export declare class InvalidTokenException extends MarketplaceMeteringServiceException {
  readonly name: "InvalidTokenException";
  readonly $fault: "client";
  readonly code: "InvalidTokenException";
  constructor(opts: ExceptionOptions);
}

/** The service answered `ExpiredTokenException`. */
export declare class ExpiredTokenException extends MarketplaceMeteringServiceException {
  readonly name: "ExpiredTokenException";
  readonly $fault: "client";
  readonly code: "ExpiredTokenException";
  constructor(opts: ExceptionOptions);
}

/** The service answered `UnrecognizedClientException`. */
export declare class UnrecognizedClientException extends MarketplaceMeteringServiceException {
  readonly name: "UnrecognizedClientException";
  readonly $fault: "client";
  readonly code: "UnrecognizedClientException";
  constructor(opts: ExceptionOptions);
}

/** The service answered `InvalidSignatureException`. */
export declare class InvalidSignatureException extends MarketplaceMeteringServiceException {
  readonly name: "InvalidSignatureException";
  readonly $fault: "client";
  readonly code: "InvalidSignatureException";
  constructor(opts: ExceptionOptions);
}

/** The service answered `AccessDeniedException`. */
export declare class AccessDeniedException extends MarketplaceMeteringServiceException {
  readonly name: "AccessDeniedException";
  readonly $fault: "client";
  readonly code: "AccessDeniedException";
  constructor(opts: ExceptionOptions);
}

/** The service answered `ValidationException`. */
export declare class ValidationException extends MarketplaceMeteringServiceException {
  readonly name: "ValidationException";
  readonly $fault: "client";
  readonly code: "ValidationException";
  constructor(opts: ExceptionOptions);
}

/** The service answered `SerializationException`. */
export declare class SerializationException extends MarketplaceMeteringServiceException {
  readonly name: "SerializationException";
  readonly $fault: "client";
  readonly code: "SerializationException";
  constructor(opts: ExceptionOptions);
}

/** The service answered `UnknownOperationException`. */
export declare class UnknownOperationException extends MarketplaceMeteringServiceException {
  readonly name: "UnknownOperationException";
  readonly $fault: "client";
  readonly code: "UnknownOperationException";
  constructor(opts: ExceptionOptions);
}

/** The service answered `DryRunOperation`. */
export declare class DryRunOperation extends MarketplaceMeteringServiceException {
  readonly name: "DryRunOperation";
  readonly $fault: "client";
  readonly code: "DryRunOperation";
  constructor(opts: ExceptionOptions);
}

/** The service answered `UnauthorizedException`. */
export declare class UnauthorizedException extends MarketplaceMeteringServiceException {
  readonly name: "UnauthorizedException";
  readonly $fault: "client";
  readonly code: "UnauthorizedException";
  constructor(opts: ExceptionOptions);
}

/** The service answered `IncompleteSignatureException`. */
export declare class IncompleteSignatureException extends MarketplaceMeteringServiceException {
  readonly name: "IncompleteSignatureException";
  readonly $fault: "client";
  readonly code: "IncompleteSignatureException";
  constructor(opts: ExceptionOptions);
}

/** The service answered `MissingAuthenticationTokenException`. */
export declare class MissingAuthenticationTokenException extends MarketplaceMeteringServiceException {
  readonly name: "MissingAuthenticationTokenException";
  readonly $fault: "client";
  readonly code: "MissingAuthenticationTokenException";
  constructor(opts: ExceptionOptions);
}

/** The service answered `RequestExpired`. */
export declare class RequestExpired extends MarketplaceMeteringServiceException {
  readonly name: "RequestExpired";
  readonly $fault: "client";
  readonly code: "RequestExpired";
  constructor(opts: ExceptionOptions);
}

/** The service answered `ServiceUnavailableException`. */
export declare class ServiceUnavailableException extends MarketplaceMeteringServiceException {
  readonly name: "ServiceUnavailableException";
  readonly $fault: "server";
  readonly code: "ServiceUnavailableException";
  constructor(opts: ExceptionOptions);
}
// </generated>

/** Local error `InvalidInput`. */
export declare class ValidationError extends MarketplaceMeteringError {
  readonly name: "ValidationError";
  readonly $fault: "client";
  readonly code: "InvalidInput";
  /** The path of the offending member (`UsageRecords[3].Quantity`). */
  readonly field?: string;
  constructor(opts: ExceptionOptions);
}

/** Local error `InvalidState`. */
export declare class InvalidStateError extends MarketplaceMeteringError {
  readonly name: "InvalidStateError";
  readonly $fault: "client";
  readonly code: "InvalidState";
  constructor(opts: ExceptionOptions);
}

/** Local error `InvalidConfig`. */
export declare class InvalidConfigError extends MarketplaceMeteringError {
  readonly name: "InvalidConfigError";
  readonly $fault: "client";
  readonly code: "InvalidConfig";
  constructor(opts: ExceptionOptions);
}

/** Local error `Credentials`. */
export declare class CredentialsProviderError extends MarketplaceMeteringError {
  readonly name: "CredentialsProviderError";
  readonly $fault: "client";
  readonly code: "Credentials";
  constructor(opts: ExceptionOptions);
}

/** Local error `Dispatch`. */
export declare class NetworkingError extends MarketplaceMeteringError {
  readonly name: "NetworkingError";
  readonly $fault: "client";
  readonly code: "Dispatch";
  constructor(opts: ExceptionOptions);
}

/** Local error `ConnectTimeout`. */
export declare class ConnectTimeoutError extends MarketplaceMeteringError {
  readonly name: "ConnectTimeoutError";
  readonly $fault: "client";
  readonly code: "ConnectTimeout";
  constructor(opts: ExceptionOptions);
}

/** Local error `ReadTimeout`. */
export declare class TimeoutError extends MarketplaceMeteringError {
  readonly name: "TimeoutError";
  readonly $fault: "client";
  readonly code: "ReadTimeout";
  constructor(opts: ExceptionOptions);
}

/** Local error `InvalidResponse`. */
export declare class InvalidResponseError extends MarketplaceMeteringError {
  readonly name: "InvalidResponseError";
  readonly $fault: "server";
  readonly code: "InvalidResponse";
  constructor(opts: ExceptionOptions);
}

/**
 * Local error `OutcomeUnknown`: a usage meter's write to the fleet store may or may not have
 * committed (its answer was lost, and the database stayed out of reach until the meter gave
 * up). The meter keeps the event and writes it again under the same commit key at the next
 * flush, so it is counted once either way: do not record it again.
 */
export declare class OutcomeUnknownError extends MarketplaceMeteringError {
  readonly name: "OutcomeUnknownError";
  readonly $fault: "client";
  readonly code: "OutcomeUnknown";
  constructor(opts: ExceptionOptions);
}

/** One row of the core's error table. */
export interface ErrorCodeInfo {
  code: string;
  number: number;
  className: string;
  fault: "client" | "server";
  kind: "local" | "modeled" | "common";
  service: boolean;
}
export declare function errorCodes(): ErrorCodeInfo[];

// ---- in-process emulator (tests) ----

export type EmulatorFault =
  | { kind: "throttle" }
  | { kind: "internal_error" }
  | { kind: "unavailable" }
  | { kind: "reset" }
  | { kind: "delay"; seconds: number }
  | { kind: "partial"; count: number }
  | { kind: "truncated" }
  | { kind: "garbage" }
  | { kind: "error"; status: number; code: string; message: string; namespaced?: boolean };

export interface EmulatorLedgerEntry {
  operation: string;
  product_code: string | null;
  customer_identifier: string | null;
  customer_aws_account_id: string | null;
  license_arn: string | null;
  dimension: string;
  hour: number;
  timestamp: number;
  quantity: number;
  [key: string]: unknown;
}

export interface EmulatorRequest {
  request_id: string;
  time: number;
  method: string;
  path: string;
  target: string | null;
  operation: string | null;
  status: number;
  error_code: string | null;
  signature_ok: boolean;
  access_key_id: string | null;
  header_names: string[];
  headers: [string, string][];
  body: string;
  fault: EmulatorFault | null;
}

export interface RunningEmulator {
  endpoint: string;
  port: number;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  sessionCredentials: { accessKeyId: string; secretAccessKey: string; sessionToken: string };
  productCode: string;
  customerAWSAccountId: string;
  licenseArn: string;
  ledger(): EmulatorLedgerEntry[];
  requests(): EmulatorRequest[];
  pushFault(fault: EmulatorFault): void;
  reset(): void;
  stop(): void;
}

/** Starts the local Metering Service emulator on 127.0.0.1 inside this process. */
export declare function startEmulator(): RunningEmulator;

/** The Rust core's version. */
export declare const coreVersion: string;
/** This package's version. */
export declare const VERSION: string;

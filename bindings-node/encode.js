// SPDX-License-Identifier: Apache-2.0
// BatchMeterUsage's input as one compact JSON text, so the addon reads 25 records from one
// string instead of walking each object with ~30 napi calls (bench/node/convert.mjs measures
// both).
'use strict'

const { isDate, isProxy } = require('node:util/types')

// The Date's own time value, whatever a subclass or a patched prototype says later.
const timeValue = Function.prototype.call.bind(Date.prototype.getTime)
const quote = JSON.stringify

/** A string member as JSON, `null` for absent (`undefined` or `null`), `undefined` for anything else. */
function text(v) {
  if (typeof v === 'string') return quote(v)
  return v === undefined || v === null ? 'null' : undefined
}

/**
 * An object the addon reads as one (not null, an array or a Date). Not a Proxy either (Vue's
 * `reactive`, a revoked one, whose every look throws): the addon reads those itself.
 */
function isRecordObject(v) {
  return typeof v === 'object' && v !== null && !isProxy(v) && !Array.isArray(v) && !isDate(v)
}

/**
 * `[ProductCode, [[Timestamp ms, CustomerIdentifier, CustomerAWSAccountId, LicenseArn,
 * Dimension, Quantity], …]]` with `null` for an absent member, when every member is one the
 * addon takes as it is: a valid `Date` timestamp, string members, a safe-integer quantity, no
 * UsageAllocations, no other key, at most 25 records. Anything else gives `undefined` and the
 * addon reads the object itself, which names what is wrong; the addon also declines a text
 * its builders refuse. So the text only makes a call cheaper; it never decides what is valid.
 */
function encodeBatchMeterUsage(input) {
  if (!isRecordObject(input)) return undefined
  let productCode = 'null'
  let records
  // for-in lists what the addon's reader lists: enumerable string keys, inherited ones too.
  for (const k in input) {
    const v = input[k]
    if (k === 'ProductCode') {
      if ((productCode = text(v)) === undefined) return undefined
    } else if (k === 'UsageRecords') {
      records = v
    } else {
      return undefined
    }
  }
  if (isProxy(records) || !Array.isArray(records) || records.length > 25) return undefined
  let out = `[${productCode},[`
  for (let i = 0; i < records.length; i++) {
    const r = records[i]
    if (!isRecordObject(r)) return undefined
    let t = 'null'
    let customer = 'null'
    let account = 'null'
    let license = 'null'
    let dimension = 'null'
    let quantity = 'null'
    for (const k in r) {
      const v = r[k]
      switch (k) {
        case 'Timestamp':
          if (v === undefined || v === null) break
          if (!isDate(v)) return undefined
          t = timeValue(v)
          if (Number.isNaN(t)) return undefined
          break
        case 'CustomerIdentifier':
          if ((customer = text(v)) === undefined) return undefined
          break
        case 'CustomerAWSAccountId':
          if ((account = text(v)) === undefined) return undefined
          break
        case 'LicenseArn':
          if ((license = text(v)) === undefined) return undefined
          break
        case 'Dimension':
          if ((dimension = text(v)) === undefined) return undefined
          break
        case 'Quantity':
          if (v === undefined || v === null) break
          if (!Number.isSafeInteger(v)) return undefined
          quantity = v
          break
        default:
          return undefined
      }
    }
    out += `${i === 0 ? '' : ','}[${t},${customer},${account},${license},${dimension},${quantity}]`
  }
  return `${out}]]`
}

module.exports = { encodeBatchMeterUsage }

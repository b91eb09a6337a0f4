// SPDX-License-Identifier: Apache-2.0
// Finds the native addon for this platform. A source checkout builds
// marketplace-metering.<tag>.node next to this file at `npm install` (the `prepare` script,
// which a registry install never runs), and that one wins; a registry install takes it from
// the optional dependency built for the platform, marketplace-metering-<tag> (npm installs only
// the one whose os, cpu and libc match).
'use strict'

const { existsSync, readFileSync } = require('node:fs')
const { join } = require('node:path')

/** glibc or musl: Alpine's ldd is musl's; else the C library Node itself reports. */
function isMusl() {
  try {
    return readFileSync('/usr/bin/ldd', 'utf8').includes('musl')
  } catch {
    const header = process.report?.getReport?.()?.header
    return !header?.glibcVersionRuntime
  }
}

/** The napi-rs platform tag: linux-x64-gnu, linux-arm64-musl, darwin-arm64, win32-x64-msvc, … */
function addonTag(platform = process.platform, arch = process.arch) {
  if (platform === 'linux') return `linux-${arch}-${isMusl() ? 'musl' : 'gnu'}`
  if (platform === 'win32') return `win32-${arch}-msvc`
  return `${platform}-${arch}`
}

const tag = addonTag()
const localFile = join(__dirname, `marketplace-metering.${tag}.node`)
const packageName = `marketplace-metering-${tag}`

/** Where the addon comes from: the local build's path, else the platform package's path. */
function addonPath() {
  if (existsSync(localFile)) return localFile
  try {
    return require.resolve(packageName)
  } catch {
    return null
  }
}

function loadAddon() {
  const path = addonPath()
  if (path === null) {
    throw new Error(
      `marketplace-metering: no native addon for ${tag}: neither the package ${packageName} ` +
        `(installed with marketplace-metering where a prebuilt addon exists for the platform; ` +
        `check that optional dependencies were not omitted) nor ${localFile} ` +
        `(built by \`npm install\` in a source checkout's bindings-node) was found`,
    )
  }
  return require(path)
}

module.exports = { addonTag, addonPath, loadAddon, packageName, localFile }

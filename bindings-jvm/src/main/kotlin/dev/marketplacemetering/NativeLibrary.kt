// SPDX-License-Identifier: Apache-2.0
// Where the native library is loaded from. Inside a jar, JNA copies the library to a new
// temporary file at every JVM start (several MB written, then read back by the loader: a few
// hundred ms of a cold start on a busy disk). Instead it is copied once into a per-user cache
// keyed by the jar entry's CRC-32 and size, and the generated bindings are pointed at that copy
// (their `uniffi.component.<name>.libraryOverride` property). Any failure (no writable home, an
// odd class loader, a copy the loader refuses on a `noexec` mount) falls back to JNA's own
// extraction; nothing here can stop the library from loading.

package dev.marketplacemetering

import java.io.IOException
import java.net.JarURLConnection
import java.net.URL
import java.nio.file.FileSystems
import java.nio.file.Files
import java.nio.file.LinkOption
import java.nio.file.Path
import java.nio.file.Paths
import java.nio.file.StandardCopyOption
import java.nio.file.attribute.PosixFilePermission
import java.nio.file.attribute.PosixFilePermissions
import java.util.zip.CRC32

internal object NativeLibrary {
    private const val NAME = "marketplace_metering_jvm"
    private const val OVERRIDE = "uniffi.component.$NAME.libraryOverride"

    /** `false`: let JNA extract the library to a temporary file at every start. */
    const val CACHE_PROPERTY = "dev.marketplacemetering.nativeCache"

    /** The cache directory (default `$XDG_CACHE_HOME` or `~/.cache`, then `marketplace-metering/jvm`). */
    const val CACHE_DIR_PROPERTY = "dev.marketplacemetering.nativeCacheDir"

    init {
        prepare()
    }

    /** Runs once, before the generated bindings load the library. */
    fun ensurePrepared() = Unit

    /** What the generated bindings load: the cached copy's path, or the library's name. */
    fun libraryName(): String = System.getProperty(OVERRIDE) ?: NAME

    private fun prepare() {
        if (System.getProperty(OVERRIDE) != null) return
        if (System.getProperty(CACHE_PROPERTY).equals("false", ignoreCase = true)) return
        try {
            val resource = com.sun.jna.Platform.RESOURCE_PREFIX + "/" + System.mapLibraryName(NAME)
            val url = NativeLibrary::class.java.classLoader?.getResource(resource) ?: return
            // A plain file (a classes directory): JNA loads it in place, nothing to copy.
            if (url.protocol != "jar") return
            val root = cacheRoot() ?: return
            loadableCopy(url, root)?.let { System.setProperty(OVERRIDE, it.toString()) }
        } catch (_: IOException) {
        } catch (_: RuntimeException) {
        }
    }

    /**
     * [cached], if the system's loader takes the copy; `null` if it refuses it: a cache on a
     * file system mounted `noexec` (a hardened container's home or `/tmp`) copies fine and
     * fails to map. JNA's own extraction (which `jna.tmpdir` places) is used then.
     */
    @Throws(IOException::class)
    internal fun loadableCopy(url: URL, root: Path): Path? {
        val lib = cached(url, root)
        return try {
            com.sun.jna.NativeLibrary.getInstance(lib.toString())
            lib
        } catch (_: UnsatisfiedLinkError) {
            null
        }
    }

    private fun cacheRoot(): Path? {
        System.getProperty(CACHE_DIR_PROPERTY)?.let { return Paths.get(it) }
        val base = System.getenv("XDG_CACHE_HOME")?.takeIf { it.isNotEmpty() }?.let { Paths.get(it) }
            ?: System.getProperty("user.home")?.takeIf { it.isNotEmpty() }?.let { Paths.get(it, ".cache") }
            ?: return null
        return base.resolve("marketplace-metering").resolve("jvm")
    }

    /**
     * The library of the jar entry [url], copied under [root] unless an intact copy is there:
     * `<root>/<crc32>-<size>/<file name>`. The copy is written to a temporary file in the same
     * directory then renamed, so a JVM killed mid-copy or two JVMs starting together never
     * leave or load a partial library. A copy of the wrong size or CRC-32 (truncated,
     * corrupt) is replaced; a directory or copy others may write is refused (IOException).
     */
    @Throws(IOException::class)
    internal fun cached(url: URL, root: Path): Path {
        val conn = url.openConnection() as JarURLConnection
        conn.useCaches = false
        val entry = conn.jarEntry ?: throw IOException("no jar entry in $url")
        if (entry.crc < 0 || entry.size < 0) throw IOException("no CRC or size for $url")
        val dir = root.resolve(String.format("%08x-%d", entry.crc, entry.size))
        val name = entry.name.substringAfterLast('/')
        val lib = dir.resolve(name)
        try {
            // The root too: whoever may write it may swap the version directory in it. The
            // root may be a link (a cache directory set by property): the directory it names.
            if (Files.isDirectory(root)) refuseShared(root, *FOLLOW)
            if (Files.isDirectory(dir)) refuseShared(dir)
            if (Files.isRegularFile(lib) && Files.size(lib) == entry.size) {
                refuseShared(lib)
                if (crc32(lib) == entry.crc) {
                    conn.jarFile.close()
                    return lib
                }
            }
        } catch (e: IOException) {
            conn.jarFile.close()
            throw e
        }
        createPrivateDirectories(dir)
        refuseShared(root, *FOLLOW)
        refuseShared(dir)
        val tmp = Files.createTempFile(dir, "$name.", ".tmp")
        try {
            conn.inputStream.use { input -> Files.copy(input, tmp, StandardCopyOption.REPLACE_EXISTING) }
            if (Files.size(tmp) != entry.size) throw IOException("short copy of $url")
            try {
                Files.move(tmp, lib, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING)
            } catch (_: java.nio.file.AtomicMoveNotSupportedException) {
                Files.move(tmp, lib, StandardCopyOption.REPLACE_EXISTING)
            }
        } finally {
            Files.deleteIfExists(tmp)
            conn.jarFile.close()
        }
        return lib
    }

    /**
     * Fails unless [path] belongs to this user and no one else may write it: a library another
     * user could replace would load their code into this JVM (a shared cache directory,
     * `HOME=/tmp` in a container). The caller then lets JNA extract its own copy.
     */
    private fun refuseShared(path: Path, vararg links: LinkOption = arrayOf(LinkOption.NOFOLLOW_LINKS)) {
        if ("posix" !in FileSystems.getDefault().supportedFileAttributeViews()) return
        val perms = Files.getPosixFilePermissions(path, *links)
        val shared = PosixFilePermission.GROUP_WRITE in perms || PosixFilePermission.OTHERS_WRITE in perms
        if (shared || !ownedByMe(path, *links)) {
            val owner = Files.getOwner(path, *links).name
            throw IOException("$path may be written by others (owner $owner, $perms): not used")
        }
    }

    private val FOLLOW = emptyArray<LinkOption>()

    /** This process's uid (the owner of `/proc/self`), or `null` where there is no `/proc`. */
    private val myUid: Any? by lazy {
        try {
            Files.getAttribute(Paths.get("/proc/self"), "unix:uid")
        } catch (_: Exception) {
            null
        }
    }

    /**
     * Whether this user owns [path]: by uid where it can be read (a container's arbitrary uid
     * has no name, and `user.name` is then `?`), else by name.
     */
    private fun ownedByMe(path: Path, vararg links: LinkOption): Boolean {
        val uid = myUid
        if (uid != null) {
            return try {
                Files.getAttribute(path, "unix:uid", *links) == uid
            } catch (_: Exception) {
                false
            }
        }
        return Files.getOwner(path, *links).name == System.getProperty("user.name")
    }

    /** The CRC-32 of [path]'s bytes (a copy of the right size may still be corrupt). */
    private fun crc32(path: Path): Long {
        val crc = CRC32()
        Files.newInputStream(path).use { input ->
            val buf = ByteArray(1 shl 16)
            while (true) {
                val n = input.read(buf)
                if (n < 0) break
                crc.update(buf, 0, n)
            }
        }
        return crc.value
    }

    private fun createPrivateDirectories(dir: Path) {
        if ("posix" in FileSystems.getDefault().supportedFileAttributeViews()) {
            Files.createDirectories(dir, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")))
        } else {
            Files.createDirectories(dir)
        }
    }
}

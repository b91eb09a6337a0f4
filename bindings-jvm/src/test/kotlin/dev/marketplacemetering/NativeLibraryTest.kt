// SPDX-License-Identifier: Apache-2.0
// The native library's cache (copied out of the jar once, not at every start): reused while
// intact, replaced when truncated (a JVM killed mid-copy on a filesystem without atomic rename,
// a full disk), refused when the directory cannot be written (the caller then lets JNA extract).

package dev.marketplacemetering

import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNotEquals
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.io.TempDir
import java.io.IOException
import java.net.URL
import java.nio.file.Files
import java.nio.file.Path
import java.nio.file.attribute.FileTime
import java.nio.file.attribute.PosixFilePermissions
import java.util.jar.JarEntry
import java.util.jar.JarOutputStream
import kotlin.random.Random

class NativeLibraryTest {
    private fun jar(dir: Path, bytes: ByteArray): URL {
        val jar = dir.resolve("face.jar")
        JarOutputStream(Files.newOutputStream(jar)).use { out ->
            out.putNextEntry(JarEntry("linux-x86-64/libfake.so"))
            out.write(bytes)
            out.closeEntry()
        }
        return URL("jar:${jar.toUri()}!/linux-x86-64/libfake.so")
    }

    @Test
    fun `copies once, reuses the copy, replaces a truncated one`(@TempDir tmp: Path) {
        val bytes = Random(7).nextBytes(300_000)
        val url = jar(tmp, bytes)
        val root = tmp.resolve("cache")

        val lib = NativeLibrary.cached(url, root)
        assertArrayEquals(bytes, Files.readAllBytes(lib))
        assertEquals("libfake.so", lib.fileName.toString())
        val old = FileTime.fromMillis(1_000_000)
        Files.setLastModifiedTime(lib, old)

        assertEquals(lib, NativeLibrary.cached(url, root))
        assertEquals(old, Files.getLastModifiedTime(lib), "an intact copy is not rewritten")

        Files.write(lib, bytes.copyOf(1000))
        assertEquals(lib, NativeLibrary.cached(url, root))
        assertArrayEquals(bytes, Files.readAllBytes(lib))
        assertEquals(listOf("libfake.so"), Files.list(lib.parent).use { s -> s.map { it.fileName.toString() }.toList() })
    }

    // A copy the system's loader refuses (here not a library at all; in a hardened container,
    // a cache on a `noexec` mount, which copies fine and fails to map) was still named as
    // the library to load: every class of the face then failed to initialize, and
    // `jna.tmpdir` could not help (found by a review). Such a copy is not used.
    @Test
    fun `a copy the loader refuses is not used`(@TempDir tmp: Path) {
        val url = jar(tmp, Random(9).nextBytes(50_000))
        val root = tmp.resolve("cache")
        assertEquals(null, NativeLibrary.loadableCopy(url, root))
        assertTrue(Files.isRegularFile(NativeLibrary.cached(url, root)), "it was copied")
    }

    // A copy of the right size was trusted whatever it held: a corrupt one crashed the JVM
    // when loaded, and one another user could write (a shared cache directory, HOME=/tmp in
    // a container) loaded their code into this JVM (found by a review). Its CRC-32 is
    // checked, and a directory or file others may write is not used.
    @Test
    fun `a copy that is not the jar's, or that others may write, is not loaded`(@TempDir tmp: Path) {
        val bytes = Random(9).nextBytes(50_000)
        val url = jar(tmp, bytes)
        val root = tmp.resolve("cache")
        val lib = NativeLibrary.cached(url, root)
        Files.write(lib, ByteArray(bytes.size))
        assertEquals(lib, NativeLibrary.cached(url, root))
        assertArrayEquals(bytes, Files.readAllBytes(lib), "a corrupt copy of the right size")

        Files.setPosixFilePermissions(lib.parent, PosixFilePermissions.fromString("rwxrwxrwx"))
        assertThrows(IOException::class.java) { NativeLibrary.cached(url, root) }
        Files.setPosixFilePermissions(lib.parent, PosixFilePermissions.fromString("rwx------"))
        Files.setPosixFilePermissions(lib, PosixFilePermissions.fromString("rw-rw-rw-"))
        assertThrows(IOException::class.java) { NativeLibrary.cached(url, root) }
        Files.setPosixFilePermissions(lib, PosixFilePermissions.fromString("rw-------"))
        Files.setPosixFilePermissions(root, PosixFilePermissions.fromString("rwxrwxrwx"))
        assertThrows(IOException::class.java) { NativeLibrary.cached(url, root) }
        Files.setPosixFilePermissions(root, PosixFilePermissions.fromString("rwx------"))
        // A root that is a link (a cache directory set by property) is the directory it names.
        val link = Files.createSymbolicLink(tmp.resolve("cache-link"), root)
        assertEquals(link.resolve(lib.parent.fileName).resolve(lib.fileName), NativeLibrary.cached(url, link))
        // Ownership is by uid: a user without a name (a container's arbitrary uid) has
        // `user.name` "?", and still owns its cache.
        val name = System.getProperty("user.name")
        System.setProperty("user.name", "?")
        try {
            assertEquals(lib, NativeLibrary.cached(url, root))
        } finally {
            System.setProperty("user.name", name)
        }
    }

    @Test
    fun `another library version gets another directory`(@TempDir tmp: Path) {
        val root = tmp.resolve("cache")
        val a = NativeLibrary.cached(jar(Files.createDirectory(tmp.resolve("a")), ByteArray(100) { 1 }), root)
        val b = NativeLibrary.cached(jar(Files.createDirectory(tmp.resolve("b")), ByteArray(100) { 2 }), root)
        assertNotEquals(a, b)
        assertEquals(1, Files.readAllBytes(a)[0].toInt())
        assertEquals(2, Files.readAllBytes(b)[0].toInt())
    }

    @Test
    fun `an unusable cache directory is an IOException, not a crash`(@TempDir tmp: Path) {
        val url = jar(tmp, ByteArray(10))
        val file = Files.write(tmp.resolve("not-a-dir"), ByteArray(1))
        assertThrows(IOException::class.java) { NativeLibrary.cached(url, file) }
    }
}

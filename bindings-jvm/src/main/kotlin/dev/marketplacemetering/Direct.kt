// SPDX-License-Identifier: Apache-2.0
// The blocking operations in ONE native call each (bindings-jvm/src/direct.rs). uniffi's generated
// calls make about five native calls per operation, each with JNA Structures (RustBuffer by
// value, RustCallStatus): most of the JVM side's CPU per call. Here the arguments are written, in
// uniffi's own serialization (the generated converters' `write`), into a direct buffer the
// calling thread keeps, one direct-mapped JNA call with primitive arguments runs the operation,
// and the result or the error is read back from the same buffer with the generated `read`s.
// Buffers come from a small pool rather than a ThreadLocal: a thread per request (virtual
// threads, a pool that recycles its threads) must not allocate a direct buffer per call.
// A client operation ends when its thread is interrupted, as an NIO channel's blocking I/O
// does: an AbstractInterruptibleChannel of its own hears Thread.interrupt() and tells the
// native call, which drops the request.

package dev.marketplacemetering

import com.sun.jna.Native
import com.sun.jna.Pointer
import dev.marketplacemetering.internal.FfiConverterString
import dev.marketplacemetering.internal.FfiConverterTypeNativeError
import dev.marketplacemetering.internal.InternalException
import dev.marketplacemetering.internal.NativeException
import java.nio.BufferOverflowException
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.nio.channels.AsynchronousCloseException
import java.nio.channels.spi.AbstractInterruptibleChannel
import java.util.concurrent.ArrayBlockingQueue
import java.util.concurrent.CancellationException
import java.util.concurrent.atomic.AtomicLong

internal object Direct {
    // Operations and result statuses, as src/direct.rs numbers them.
    const val BATCH_METER_USAGE = 0
    const val METER_USAGE = 1
    const val RESOLVE_CUSTOMER = 2
    const val REGISTER_USAGE = 3
    const val RECORD = 4 // on a meter's handle
    private const val OK: Byte = 0
    private const val ERROR: Byte = 1
    private const val INTERNAL: Byte = 2
    private const val CLOSED: Byte = 3
    private const val INTERRUPTED: Byte = 4

    /** A 25-record call and its result fit in a few kB. */
    private const val INITIAL = 16 * 1024

    /** Buffers up to this size go back to the pool; larger ones (a rare huge call) are dropped. */
    private const val KEPT = 64 * 1024

    /** At most this many idle buffers (a call in flight holds one): 1-4 MB of direct memory. */
    private const val POOLED = 64

    init {
        NativeLibrary.ensurePrepared()
        Native.register(Direct::class.java, NativeLibrary.libraryName())
    }

    /** Runs operation [op]; see `mm_jvm_direct_call` in src/direct.rs. */
    external fun mm_jvm_direct_call(handle: Long, op: Int, buf: Long, inLen: Int, cap: Int, call: Long): Int

    /** Ends call number [call]: its thread was interrupted. */
    external fun mm_jvm_direct_interrupt(call: Long)

    /** Forgets call number [call]'s interrupt, raised after the call returned. */
    external fun mm_jvm_direct_forget(call: Long)

    /** The first of this class loader's call numbers; see `mm_jvm_direct_call_base`. */
    external fun mm_jvm_direct_call_base(): Long

    /**
     * Numbers the interruptible calls: never 0 (not interruptible), never reused, and apart
     * from another class loader's (the native table of calls is the process's).
     */
    private val calls = AtomicLong(mm_jvm_direct_call_base())

    /**
     * Runs [block] with a new call number that the calling thread's `interrupt()`, while it
     * runs, raises natively (see `mm_jvm_direct_interrupt`); the native call it makes under that
     * number ends early. The thread keeps its interrupt status.
     */
    internal fun <T> interruptibly(block: (call: Long) -> T): T {
        val call = calls.incrementAndGet()
        val interruption = Interruption(call)
        interruption.enter()
        try {
            return block(call)
        } finally {
            if (interruption.leave()) mm_jvm_direct_forget(call)
        }
    }

    /**
     * Hears its thread's `interrupt()` between [enter] and [leave], as a channel's blocking I/O
     * does, and passes it to the native call [call]. One per call: a channel closes for good.
     */
    private class Interruption(private val call: Long) : AbstractInterruptibleChannel() {
        fun enter() = begin()

        /** Whether an interrupt came (the native side was told; the thread stays interrupted). */
        fun leave(): Boolean {
            try {
                end(true)
            } catch (_: AsynchronousCloseException) {
                // ClosedByInterruptException: the interrupt is this call's, answered below.
            }
            return !isOpen
        }

        override fun implCloseChannel() = mm_jvm_direct_interrupt(call)
    }

    /** Takes a result too large for the buffer; see `mm_jvm_direct_take`. */
    external fun mm_jvm_direct_take(ticket: Long, buf: Long, cap: Int): Int

    private class Buffer(size: Int) {
        val bytes: ByteBuffer = ByteBuffer.allocateDirect(size).order(ByteOrder.BIG_ENDIAN)
        val address: Long = Pointer.nativeValue(Native.getDirectBufferPointer(bytes))
    }

    private val pool = ArrayBlockingQueue<Buffer>(POOLED)

    private fun grown(old: Buffer, atLeast: Int): Buffer {
        if (old.bytes.capacity() == Int.MAX_VALUE) {
            // Arguments past 2 GiB: refused (doubling no further, the write looped for good).
            val number = dev.marketplacemetering.internal.nativeErrorCodes().first { it.code == "InvalidInput" }.number
            throw NativeException.Failure(
                number, "InvalidInput", "the call's arguments take more than 2 GiB", null, null, null, 0u, false,
            ).toPublic()
        }
        var size = old.bytes.capacity()
        while (size < atLeast) size = if (size > Int.MAX_VALUE / 2) Int.MAX_VALUE else size * 2
        return Buffer(size)
    }

    /** Empties the pool (tests: the next calls start with the smallest buffer). */
    internal fun drainPool() = pool.clear()

    /**
     * Operation [op] of the client [handle]: [write] its arguments, one native call, [read] its
     * result. A native failure is thrown as the generated [dev.marketplacemetering.internal.NativeException]
     * (translated by the caller), a closed client as [IllegalStateException]. An [interruptible]
     * call ends when its thread is interrupted, as [CancellationException].
     */
    fun <T> call(
        handle: Long,
        op: Int,
        interruptible: Boolean,
        write: (ByteBuffer) -> Unit,
        read: (ByteBuffer) -> T,
    ): T {
        var buf = pool.poll() ?: Buffer(INITIAL)
        try {
            while (true) {
                buf.bytes.clear()
                try {
                    write(buf.bytes)
                    break
                } catch (_: BufferOverflowException) {
                    buf = grown(buf, buf.bytes.capacity() + 1)
                }
            }
            val (address, inLen, cap) = Triple(buf.address, buf.bytes.position(), buf.bytes.capacity())
            val n = when (interruptible) {
                true -> interruptibly { call -> mm_jvm_direct_call(handle, op, address, inLen, cap, call) }
                false -> mm_jvm_direct_call(handle, op, address, inLen, cap, 0L)
            }
            if (n < 0) throw InternalException("mm_jvm_direct_call refused its arguments")
            if (n > buf.bytes.capacity()) {
                val ticket = buf.bytes.getLong(0)
                buf = grown(buf, n)
                if (mm_jvm_direct_take(ticket, buf.address, buf.bytes.capacity()) != n) {
                    throw InternalException("mm_jvm_direct_take lost a result")
                }
            }
            val bytes = buf.bytes
            bytes.clear()
            bytes.limit(n)
            return when (bytes.get()) {
                OK -> read(bytes).also {
                    if (bytes.hasRemaining()) throw InternalException("junk after a direct call's result")
                }
                ERROR -> throw FfiConverterTypeNativeError.read(bytes)
                INTERNAL -> throw InternalException(FfiConverterString.read(bytes))
                CLOSED -> throw IllegalStateException("NativeClient object has already been destroyed")
                // The thread keeps its interrupt status, as after an interrupted channel's I/O.
                INTERRUPTED -> throw CancellationException(
                    "the calling thread was interrupted: the call was abandoned, and whether the service applied it is not known",
                )
                else -> throw InternalException("unknown direct call status")
            }
        } finally {
            // Back to the pool once nothing reads it any more (a full pool drops it).
            if (buf.bytes.capacity() <= KEPT) pool.offer(buf)
        }
    }
}

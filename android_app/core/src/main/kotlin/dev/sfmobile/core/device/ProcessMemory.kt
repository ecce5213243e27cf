package dev.sfmobile.core.device

import java.io.File

/**
 * The process's resident memory from Linux's `/proc/self/status` (Android included): `VmHWM`,
 * the peak resident set since the process started, and `VmRSS`, the current one. Memory the NPU
 * or GPU driver maps outside the process's pages is not in either.
 */
object ProcessMemory {
    private val STATUS = File("/proc/self/status")

    /** Peak resident MiB of this process so far, or null where /proc is not readable. */
    fun peakResidentMb(): Double? = readStatus()?.let { statusFieldMb(it, "VmHWM") }

    /** Current resident MiB of this process, or null where /proc is not readable. */
    fun residentMb(): Double? = readStatus()?.let { statusFieldMb(it, "VmRSS") }

    /** The `kB` value of [field] in the text of a /proc status file, in MiB; null when absent. */
    fun statusFieldMb(
        status: String,
        field: String,
    ): Double? =
        status
            .lineSequence()
            .firstOrNull { it.startsWith("$field:") }
            ?.removePrefix("$field:")
            ?.trim()
            ?.removeSuffix("kB")
            ?.trim()
            ?.toLongOrNull()
            ?.let { it / 1024.0 }

    private fun readStatus(): String? = runCatching { STATUS.readText() }.getOrNull()
}

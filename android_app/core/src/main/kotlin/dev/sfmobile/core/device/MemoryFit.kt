package dev.sfmobile.core.device

import java.util.Locale

/**
 * How much memory loading a bundle is assumed to take: its files once in memory, times [factor]
 * for activations and runtime buffers, plus a fixed [reserveBytes] for the app and the runtime
 * libraries. The default factor 1.5 sits below what ONNX Runtime took on the host for the SD-1.5
 * UNet at batch 2 (6.0 GB peak for 3.4 GB of weights, ../shared/ENVIRONMENT.md) because the text
 * encoder and decoder are smaller and run one at a time; it is an estimate, not a measurement.
 */
data class MemoryPolicy(
    val factor: Double = 1.5,
    val reserveBytes: Long = 256L * MIB,
) {
    init {
        require(factor >= 1.0) { "factor must be >= 1, got $factor" }
        require(reserveBytes >= 0) { "reserveBytes must be >= 0, got $reserveBytes" }
    }

    /** Bytes a bundle of [bundleBytes] on disk is expected to need once loaded. */
    fun neededBytes(bundleBytes: Long): Long = (bundleBytes * factor).toLong() + reserveBytes
}

/**
 * What the device reports (Android's ActivityManager.MemoryInfo): [availableBytes] (`availMem`),
 * [thresholdBytes] (`threshold`, below which the system starts killing background apps) and
 * [totalBytes] (`totalMem`).
 */
data class DeviceMemory(
    val availableBytes: Long,
    val thresholdBytes: Long,
    val totalBytes: Long,
) {
    /** Memory the app can take before it pushes the device into low memory. */
    val usableBytes: Long get() = (availableBytes - thresholdBytes).coerceAtLeast(0)
}

/** The decision before loading a bundle: [fits], and a one-line [message] either way. */
data class MemoryFit(
    val fits: Boolean,
    val neededBytes: Long,
    val usableBytes: Long,
    val message: String,
)

/**
 * Compares the bundle named [bundleName] ([bundleBytes] on disk) with the device's free memory,
 * so the app refuses with a message instead of being killed by the low-memory killer mid-load.
 */
fun checkMemory(
    bundleName: String,
    bundleBytes: Long,
    memory: DeviceMemory,
    policy: MemoryPolicy = MemoryPolicy(),
): MemoryFit {
    val needed = policy.neededBytes(bundleBytes)
    val usable = memory.usableBytes
    val fits = needed <= usable
    val message =
        if (fits) {
            "bundle '$bundleName' needs about ${gib(needed)} and ${gib(usable)} is free"
        } else {
            "bundle '$bundleName' needs about ${gib(needed)} of memory (${gib(bundleBytes)} on disk) " +
                "but only ${gib(usable)} of the phone's ${gib(memory.totalBytes)} is free: " +
                "close other apps or use a smaller bundle (fp16 or int8)"
        }
    return MemoryFit(fits, needed, usable, message)
}

private const val MIB = 1024L * 1024L

private fun gib(bytes: Long): String = String.format(Locale.ROOT, "%.2f GiB", bytes / (1024.0 * MIB))

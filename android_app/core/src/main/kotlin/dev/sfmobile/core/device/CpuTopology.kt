package dev.sfmobile.core.device

import java.io.File

/**
 * The phone's performance cores, for XNNPACK's thread count (ONNX Runtime's XNNPACK guidance:
 * one thread per big core; the little cores slow a parallel matmul down). A core is big when
 * its maximum clock is at least [BIG_CORE_RATIO] of the fastest core's: 5 of 8 on a Snapdragon
 * 8 Gen 2 (3.2 / 2.8 / 2.0 GHz), all 8 on an 8 Elite (4.32 / 3.53 GHz).
 */
object CpuTopology {
    const val BIG_CORE_RATIO = 0.75

    /** Number of big cores among cores whose maximum clocks are [maxFrequenciesKhz]; at least 1. */
    fun bigCoreCount(maxFrequenciesKhz: List<Long>): Int {
        val fastest = maxFrequenciesKhz.maxOrNull() ?: return 1
        return maxFrequenciesKhz.count { it >= fastest * BIG_CORE_RATIO }.coerceAtLeast(1)
    }

    /**
     * Big cores of this device from `/sys/devices/system/cpu/cpuN/cpufreq/cpuinfo_max_freq`;
     * [fallback] (e.g. availableProcessors / 2) where the files cannot be read.
     */
    fun bigCoreCount(fallback: Int): Int {
        val cpus =
            File("/sys/devices/system/cpu").listFiles { f -> f.name.matches(Regex("cpu[0-9]+")) }
                ?: return fallback.coerceAtLeast(1)
        val frequencies =
            cpus.mapNotNull { cpu ->
                runCatching { File(cpu, "cpufreq/cpuinfo_max_freq").readText().trim().toLong() }.getOrNull()
            }
        return if (frequencies.isEmpty()) fallback.coerceAtLeast(1) else bigCoreCount(frequencies)
    }
}

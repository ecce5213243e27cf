package dev.sfmobile.core.device

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test

class MemoryFitTest {
    private val gib = 1024L * 1024L * 1024L
    private val policy = MemoryPolicy(factor = 1.5, reserveBytes = gib / 4)

    @Test
    fun `a bundle needs its size times the factor plus the reserve`() {
        assertEquals(3 * gib + gib / 4, policy.neededBytes(2 * gib))
    }

    @Test
    fun `the low-memory threshold is not usable`() {
        val memory = DeviceMemory(availableBytes = 4 * gib, thresholdBytes = gib, totalBytes = 8 * gib)
        assertEquals(3 * gib, memory.usableBytes)
        assertEquals(0, DeviceMemory(gib, 2 * gib, 8 * gib).usableBytes)
    }

    @Test
    fun `fits exactly at the boundary and not one byte past it`() {
        val needed = policy.neededBytes(2 * gib)
        assertTrue(checkMemory("b", 2 * gib, DeviceMemory(needed + gib, gib, 8 * gib), policy).fits)
        assertFalse(checkMemory("b", 2 * gib, DeviceMemory(needed + gib - 1, gib, 8 * gib), policy).fits)
    }

    @Test
    fun `a refusal names the bundle, what it needs and what is free`() {
        val fit = checkMemory("sd15-fp16", 2 * gib, DeviceMemory(3 * gib, gib / 2, 8 * gib), policy)
        assertFalse(fit.fits)
        assertEquals(
            "bundle 'sd15-fp16' needs about 3.25 GiB of memory (2.00 GiB on disk) but only 2.50 GiB of the " +
                "phone's 8.00 GiB is free: close other apps or use a smaller bundle (fp16 or int8)",
            fit.message,
        )
    }
}

package dev.sfmobile.core.device

import dev.sfmobile.core.InputException
import org.junit.jupiter.api.Assertions.assertArrayEquals
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test

class SmallDeviceFactsTest {
    @Test
    fun `big cores are those within 75 percent of the fastest clock`() {
        // Snapdragon 8 Gen 2: 1 x 3.19, 4 x 2.8, 3 x 2.02 GHz.
        val gen2 = listOf(2016000L, 2016000L, 2016000L, 2803200L, 2803200L, 2803200L, 2803200L, 3187200L)
        assertEquals(5, CpuTopology.bigCoreCount(gen2))
        // Snapdragon 8 Elite: 2 x 4.32, 6 x 3.53 GHz.
        assertEquals(8, CpuTopology.bigCoreCount(List(2) { 4320000L } + List(6) { 3532800L }))
        assertEquals(1, CpuTopology.bigCoreCount(listOf()))
    }

    @Test
    fun `proc status fields are read in MiB`() {
        val status = "Name:\tjava\nVmPeak:\t 9000000 kB\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\n"
        assertEquals(200.0, ProcessMemory.statusFieldMb(status, "VmHWM"))
        assertEquals(100.0, ProcessMemory.statusFieldMb(status, "VmRSS"))
        assertNull(ProcessMemory.statusFieldMb(status, "VmSwap"))
    }

    @Test
    fun `this process's peak is at least its current resident memory`() {
        assertNotNull(ProcessMemory.peakResidentMb(), "Linux /proc/self/status has VmHWM")
        val status = java.io.File("/proc/self/status").readText()
        val peak = ProcessMemory.statusFieldMb(status, "VmHWM")!!
        val now = ProcessMemory.statusFieldMb(status, "VmRSS")!!
        assertTrue(peak >= now && now > 0, "peak $peak, current $now")
    }

    @Test
    fun `rgb bytes pack into opaque ARGB ints`() {
        val rgb = byteArrayOf(255.toByte(), 0, 0, 1, 128.toByte(), 255.toByte())
        assertArrayEquals(intArrayOf(0xFFFF0000.toInt(), 0xFF0180FF.toInt()), rgbToArgb(rgb, 2, 1))
        assertThrows(InputException::class.java) { rgbToArgb(rgb, 1, 1) }
    }
}

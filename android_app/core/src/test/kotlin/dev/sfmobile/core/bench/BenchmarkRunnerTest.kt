package dev.sfmobile.core.bench

import dev.sfmobile.core.EngineException
import dev.sfmobile.core.Timings
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Test

class BenchmarkRunnerTest {
    private fun timings(total: Double) =
        Timings().apply {
            tokenizeMs = 1.0
            textEncoderMs = 2.0
            unetMs.addAll(listOf(3.0, 4.0))
            schedulerMs = 0.5
            decoderMs = 5.0
            totalMs = total
        }

    @Test
    fun `warm-up runs are not recorded and timed runs are, in order`() {
        var calls = 0
        val outcome = BenchmarkRunner(warmupRuns = 2, runs = 3, peakMemoryMb = { 100.0 + calls }).run { timings((++calls).toDouble()) }
        assertEquals(BenchmarkStatus.OK, outcome.status)
        assertNull(outcome.error)
        assertEquals(5, calls)
        assertEquals(listOf(3.0, 4.0, 5.0), outcome.runs.map { it.totalMs })
        assertEquals(
            RunRecord(2.0, listOf(3.0, 4.0), 5.0, 3.0, tokenizeMs = 1.0, schedulerMs = 0.5, peakMemoryMb = 103.0),
            outcome.runs.first(),
        )
    }

    @Test
    fun `a failure ends the session as failed and keeps the runs before it`() {
        var calls = 0
        val outcome =
            BenchmarkRunner(1, 5, peakMemoryMb = { null }).run {
                if (++calls == 4) throw EngineException("unet returned NaN at step 3")
                timings(1.0)
            }
        assertEquals(BenchmarkStatus.FAILED, outcome.status)
        assertEquals("unet returned NaN at step 3", outcome.error)
        assertEquals(2, outcome.runs.size)
    }

    @Test
    fun `other exceptions are named by type, out of memory by its own message`() {
        val runtime = BenchmarkRunner(0, 1) { null }.run { throw IllegalStateException("session closed\nstack") }
        assertEquals("IllegalStateException: session closed", runtime.error)
        val oom = BenchmarkRunner(0, 2) { null }.run { throw OutOfMemoryError() }
        assertEquals("out of memory after 0 of 2 timed runs", oom.error)
    }

    @Test
    fun `cancellation between runs ends the session as cancelled`() {
        var calls = 0
        val outcome = BenchmarkRunner(0, 4) { null }.run(isCancelled = { calls == 2 }) { timings((++calls).toDouble()) }
        assertEquals(BenchmarkStatus.CANCELLED, outcome.status)
        assertEquals("cancelled after 2 of 4 timed runs", outcome.error)
        assertEquals(2, outcome.runs.size)
    }
}

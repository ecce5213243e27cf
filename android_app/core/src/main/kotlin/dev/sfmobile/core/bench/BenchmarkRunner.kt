package dev.sfmobile.core.bench

import dev.sfmobile.core.CancelledException
import dev.sfmobile.core.SfmobileException
import dev.sfmobile.core.Timings
import dev.sfmobile.core.device.ProcessMemory

/** What a session's runs came to: [runs] holds the timed runs that finished, in order. */
data class RunOutcome(
    val status: BenchmarkStatus,
    val runs: List<RunRecord>,
    val error: String? = null,
)

/**
 * Runs [warmupRuns] untimed generations, then [runs] timed ones, and turns any failure into a
 * `failed` (or `cancelled`) outcome that keeps the runs finished before it: a benchmark session
 * always ends with a result file, never with a crash that leaves nothing to pull.
 */
class BenchmarkRunner(
    private val warmupRuns: Int,
    private val runs: Int,
    private val peakMemoryMb: () -> Double? = ProcessMemory::peakResidentMb,
) {
    init {
        require(warmupRuns >= 0 && runs >= 1) { "need warmupRuns >= 0 and runs >= 1" }
    }

    /** Calls [generate] warmupRuns + runs times unless [isCancelled] says stop between runs. */
    fun run(
        isCancelled: () -> Boolean = { false },
        generate: () -> Timings,
    ): RunOutcome {
        val records = mutableListOf<RunRecord>()
        return try {
            repeat(warmupRuns) {
                if (isCancelled()) throw CancelledException()
                generate()
            }
            repeat(runs) {
                if (isCancelled()) throw CancelledException()
                records += RunRecord.of(generate(), peakMemoryMb())
            }
            RunOutcome(BenchmarkStatus.OK, records)
        } catch (e: CancelledException) {
            RunOutcome(BenchmarkStatus.CANCELLED, records, "cancelled after ${records.size} of $runs timed runs")
        } catch (e: OutOfMemoryError) {
            RunOutcome(BenchmarkStatus.FAILED, records, "out of memory after ${records.size} of $runs timed runs")
        } catch (e: Exception) {
            RunOutcome(BenchmarkStatus.FAILED, records, describeFailure(e))
        }
    }
}

/**
 * One line naming a failure: the first line of its message, prefixed with its type unless it is
 * one of the core's own errors (whose messages already name the file, tensor or option).
 */
fun describeFailure(e: Throwable): String {
    val line =
        e.message
            ?.lineSequence()
            ?.firstOrNull { it.isNotBlank() }
            ?.trim()
    return when {
        line.isNullOrEmpty() -> e.javaClass.simpleName
        e is SfmobileException -> line
        else -> "${e.javaClass.simpleName}: $line"
    }
}

package dev.sfmobile.core.bench

import dev.sfmobile.core.GenerationRequest
import dev.sfmobile.core.InputException
import dev.sfmobile.core.device.Backend

/**
 * One benchmark session as the intent extras ask for it
 * (`am start ... --es bundle NAME --es backend ort-qnn --ei runs 5 --ei warmup 1 --ei steps 8
 * --es prompt "..." --el seed 0`). [steps] and [guidance] are null when the extras leave them to
 * the bundle's manifest (`scheduler.default_steps`, `scheduler.default_guidance`).
 */
data class BenchmarkArgs(
    val bundle: String,
    val backend: Backend,
    val runs: Int = DEFAULT_RUNS,
    val warmupRuns: Int = DEFAULT_WARMUP,
    val steps: Int? = null,
    val guidance: Float? = null,
    val prompt: String = DEFAULT_PROMPT,
    val negativePrompt: String = "",
    val seed: Long = 0,
    val sessionId: String? = null,
) {
    /** The generation each run makes, with the manifest's defaults where the extras gave none. */
    fun request(
        defaultSteps: Int,
        defaultGuidance: Float,
    ): GenerationRequest =
        GenerationRequest(
            prompt = prompt,
            negativePrompt = negativePrompt,
            steps = steps ?: defaultSteps,
            guidance = guidance ?: defaultGuidance,
            seed = seed,
        )

    companion object {
        const val DEFAULT_RUNS = 5
        const val DEFAULT_WARMUP = 1
        const val DEFAULT_PROMPT = "a photograph of an astronaut riding a horse"

        /**
         * Checks the extras as read from the intent (null: not given), naming the extra at fault
         * in an InputException. [sessionId], when given, must be usable as the result's file name.
         */
        fun parse(
            bundle: String?,
            backend: String?,
            runs: Int?,
            warmup: Int?,
            steps: Int?,
            guidance: Float?,
            prompt: String?,
            negativePrompt: String?,
            seed: Long?,
            sessionId: String?,
        ): BenchmarkArgs {
            if (bundle.isNullOrBlank()) throw InputException("missing extra: --es bundle NAME (a folder in files/bundles/)")
            if (backend.isNullOrBlank()) {
                throw InputException("missing extra: --es backend NAME (${Backend.entries.joinToString(", ") { it.id }})")
            }
            if (runs != null && runs < 1) throw InputException("--ei runs must be >= 1, got $runs")
            if (warmup != null && warmup < 0) throw InputException("--ei warmup must be >= 0, got $warmup")
            if (steps != null && steps < 1) throw InputException("--ei steps must be >= 1, got $steps")
            if (guidance != null && !guidance.isFinite()) throw InputException("--ef guidance must be finite, got $guidance")
            if (seed != null && seed < 0) throw InputException("--el seed must be >= 0, got $seed")
            if (sessionId != null && !SessionIds.isValid(sessionId)) {
                throw InputException("--es session must match ${SessionIds.PATTERN.pattern}, got '$sessionId'")
            }
            return BenchmarkArgs(
                bundle = bundle,
                backend = Backend.parse(backend),
                runs = runs ?: DEFAULT_RUNS,
                warmupRuns = warmup ?: DEFAULT_WARMUP,
                steps = steps,
                guidance = guidance,
                prompt = prompt ?: DEFAULT_PROMPT,
                negativePrompt = negativePrompt ?: "",
                seed = seed ?: 0,
                sessionId = sessionId,
            )
        }
    }
}

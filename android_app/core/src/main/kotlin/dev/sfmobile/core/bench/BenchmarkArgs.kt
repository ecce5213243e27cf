package dev.sfmobile.core.bench

import dev.sfmobile.core.GenerationRequest
import dev.sfmobile.core.InputException
import dev.sfmobile.core.TiledDecode
import dev.sfmobile.core.device.Backend

/**
 * The host's wait for the phone to cool down before this session (schema `cooldown`), as
 * benchmarks/adb_bench.py passes it: PowerManager's thermal status when the wait began and when
 * it ended, and the seconds waited. The app only records it; the host decided it.
 */
data class HostCooldown(
    val thermalStatusBefore: Int,
    val thermalStatusAfter: Int,
    val waitedS: Double,
)

/**
 * One benchmark session as the intent extras ask for it
 * (`am start ... --es bundle NAME --es backend ort-qnn --ei runs 5 --ei warmup 1 --ei steps 8
 * --es prompt "..." --el seed 0 --es session_id ID`, and from adb_bench.py the cooldown extras
 * `--ei cooldown_status_before N --ei cooldown_status_after N --ef cooldown_waited_s S`, and
 * `--es tile_decoder auto|on|off`). [steps]
 * and [guidance] are null when the extras leave them to the bundle's manifest
 * (`scheduler.default_steps`, `scheduler.default_guidance`); [sessionId] is null when the app
 * names the session itself. [tileDecoder] is the Pipeline's choice (null: auto, tiles when the
 * bundle has a tile decoder smaller than the latent; true: on; false: off), which also decides
 * the one decoder component the engine loads ([TiledDecode.decoderComponent]).
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
    val cooldown: HostCooldown? = null,
    val tileDecoder: Boolean? = null,
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
         * in an InputException. [sessionId], when given, must be usable as the result's file name;
         * the three cooldown extras come all together or not at all.
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
            cooldownStatusBefore: Int? = null,
            cooldownStatusAfter: Int? = null,
            cooldownWaitedS: Float? = null,
            tileDecoder: String? = null,
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
                throw InputException("--es session_id must match ${SessionIds.PATTERN.pattern}, got '$sessionId'")
            }
            val cooldown = cooldown(cooldownStatusBefore, cooldownStatusAfter, cooldownWaitedS)
            if (tileDecoder != null && tileDecoder !in TiledDecode.CHOICES) {
                throw InputException("--es tile_decoder must be one of ${TiledDecode.CHOICES.joinToString("|")}, got '$tileDecoder'")
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
                cooldown = cooldown,
                tileDecoder = tileDecoder?.let(TiledDecode::parseChoice),
            )
        }

        private fun cooldown(
            statusBefore: Int?,
            statusAfter: Int?,
            waitedS: Float?,
        ): HostCooldown? {
            val given: Map<String, Number?> =
                mapOf(
                    "--ei cooldown_status_before" to statusBefore,
                    "--ei cooldown_status_after" to statusAfter,
                    "--ef cooldown_waited_s" to waitedS,
                )
            if (given.values.all { it == null }) return null
            for ((extra, value) in given) {
                if (value == null) throw InputException("missing extra: $extra (the cooldown extras come together)")
                if (value.toDouble().let { !it.isFinite() || it < 0 }) throw InputException("$extra must be >= 0, got $value")
            }
            // Float.toString is the shortest decimal that reads back as the same float: 95.5f -> 95.5.
            return HostCooldown(statusBefore!!, statusAfter!!, waitedS!!.toString().toDouble())
        }
    }
}

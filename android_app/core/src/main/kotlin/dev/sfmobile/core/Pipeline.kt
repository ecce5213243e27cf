package dev.sfmobile.core

/**
 * One image request. `seed` is the unsigned 64-bit seed of docs/noise.md held in a Long's bits
 * (`-1L` is 2^64 - 1; [java.lang.Long.parseUnsignedLong] reads one from text).
 */
data class GenerationRequest(
    val prompt: String,
    val negativePrompt: String = "",
    val steps: Int,
    val guidance: Float,
    val seed: Long,
)

/**
 * Milliseconds spent in each stage of one generation (Python's Timings, in ms); unetMs has one
 * entry per UNet call. Written by the Pipeline (and by tests in this module), read by callers.
 */
class Timings {
    var tokenizeMs: Double = 0.0
        internal set
    var textEncoderMs: Double = 0.0
        internal set
    val unetMs: MutableList<Double> = ArrayList()
    var schedulerMs: Double = 0.0
        internal set
    var decoderMs: Double = 0.0
        internal set
    var totalMs: Double = 0.0
        internal set

    override fun toString(): String =
        "tokenize %.1f ms, text encoder %.1f ms, unet %.1f ms (%d calls), scheduler %.1f ms, decoder %.1f ms, total %.1f ms"
            .format(tokenizeMs, textEncoderMs, unetMs.sum(), unetMs.size, schedulerMs, decoderMs, totalMs)
}

/** The image as 8-bit RGB, row-major, `height * width * 3` bytes (read them as unsigned). */
class Generation(
    val width: Int,
    val height: Int,
    val rgb: ByteArray,
    val timings: Timings,
)

/**
 * The reference runtime's loop (sfmobile/pipeline.py), step for step: tokenize -> encode ->
 * DDIM with classifier-free guidance -> decode -> 8-bit RGB. Guidance follows diffusers: the
 * unconditional embedding comes from the negative prompt, noise = uncond + w * (cond - uncond)
 * in float32, and w <= 1 runs the conditional branch alone. The UNet sees [uncond, cond] as one
 * batch-2 call or as two batch-1 calls, as the manifest's `guidance.cfg_batch` says; a
 * guidance-input model (`guidance.input`) gets one call per step with the scale as an input.
 */
class Pipeline(
    private val manifest: Manifest,
    private val tokenizer: Tokenizer,
    private val engine: Engine,
) {
    constructor(bundle: Bundle, engine: Engine) : this(bundle.manifest, bundle.tokenizer(), engine)

    private val scheduler = DdimScheduler(manifest.scheduler)
    private val latent = manifest.latent

    /** Generate one image; onStep(done, total) after every step; isCancelled is asked before each step. */
    fun generate(
        request: GenerationRequest,
        onStep: (done: Int, total: Int) -> Unit = { _, _ -> },
        isCancelled: () -> Boolean = { false },
    ): Generation {
        val guidance = request.guidance
        if (!guidance.isFinite() || guidance < 0f) throw InputException("guidance must be finite and >= 0, got $guidance")
        val timesteps = scheduler.timesteps(request.steps)
        val timings = Timings()
        val total = Stopwatch()
        val watch = Stopwatch()
        var latents = Noise.gaussian(request.seed, intArrayOf(1, latent.channels, latent.height, latent.width)).data

        val useCfg = guidance > 1f && !manifest.guidance.input
        val prompts = if (useCfg) listOf(request.negativePrompt, request.prompt) else listOf(request.prompt)
        val ids = prompts.map { tokenizer.encode(it) }
        timings.tokenizeMs = watch.lap()
        val rows =
            ids.map {
                val row = engine.encodeText(IntTensor(intArrayOf(1, Tokenizer.MAX_LENGTH), it))
                if (row.shape.size != 3 || row.shape[0] != 1 || row.shape[1] != Tokenizer.MAX_LENGTH) {
                    throw EngineException("text_encoder returned shape ${row.shape.contentToString()}, expected [1, 77, D]")
                }
                checked("text_encoder", row, null)
            }
        val text = concat(rows)
        timings.textEncoderMs = watch.lap()

        for ((index, t) in timesteps.withIndex()) {
            if (isCancelled()) throw CancelledException("generation cancelled before step ${index + 1} of ${timesteps.size}")
            val noise = predict(latents, t, text, useCfg, guidance, timings, index)
            watch.lap()
            latents = scheduler.step(noise, t, latents, request.steps)
            timings.schedulerMs += watch.lap()
            onStep(index + 1, timesteps.size)
        }
        if (isCancelled()) throw CancelledException("generation cancelled before decoding")

        val scale = latent.scalingFactor.toFloat()
        val scaled = FloatArray(latents.size) { latents[it] / scale }
        val decoded =
            checked("decoder", engine.decode(FloatTensor(intArrayOf(1, latent.channels, latent.height, latent.width), scaled)), null)
        timings.decoderMs = watch.lap()
        val image = manifest.image
        expectShape("decoder", decoded, intArrayOf(1, 3, image.height, image.width))
        val rgb = Pixels.toRgb(decoded)
        timings.totalMs = total.lap()
        return Generation(image.width, image.height, rgb, timings)
    }

    /** The UNet's (guided) prediction for one step, [1, c, h, w] values. */
    private fun predict(
        latents: FloatArray,
        t: Int,
        text: FloatTensor,
        useCfg: Boolean,
        guidanceScale: Float,
        timings: Timings,
        step: Int,
    ): FloatArray {
        val shape = intArrayOf(1, latent.channels, latent.height, latent.width)
        val timestep = t.toFloat()
        val watch = Stopwatch()

        fun call(
            rows: Int,
            input: FloatArray,
            embeddings: FloatTensor,
            guidance: Float?,
        ): FloatArray {
            val batchShape = shape.copyOf().also { it[0] = rows }
            val output = engine.predict(FloatTensor(batchShape, input), timestep, embeddings, guidance)
            timings.unetMs += watch.lap()
            expectShape("unet", output, batchShape)
            return checked("unet", output, step).data
        }
        if (!useCfg) {
            return call(1, latents, text, if (manifest.guidance.input) guidanceScale else null)
        }
        val n = latents.size
        val uncond: FloatArray
        val cond: FloatArray
        if (manifest.guidance.cfgBatch == 2) {
            val both = call(2, latents + latents, text, null)
            uncond = both.copyOfRange(0, n)
            cond = both.copyOfRange(n, 2 * n)
        } else {
            uncond = call(1, latents, row(text, 0), null)
            cond = call(1, latents, row(text, 1), null)
        }
        return FloatArray(n) { uncond[it] + guidanceScale * (cond[it] - uncond[it]) }
    }

    private fun expectShape(
        component: String,
        tensor: FloatTensor,
        expected: IntArray,
    ) {
        if (!tensor.shape.contentEquals(expected)) {
            throw EngineException("$component returned shape ${tensor.shape.contentToString()}, expected ${expected.contentToString()}")
        }
    }

    /** A non-finite output stops the generation (a black image is never returned). */
    private fun checked(
        component: String,
        tensor: FloatTensor,
        step: Int?,
    ): FloatTensor {
        val bad = tensor.data.indexOfFirst { !it.isFinite() }
        if (bad >= 0) {
            val where = if (step == null) "" else " at step ${step + 1}"
            throw EngineException("$component returned a non-finite value (${tensor.data[bad]})$where")
        }
        return tensor
    }

    private fun concat(rows: List<FloatTensor>): FloatTensor {
        val shape =
            rows
                .first()
                .shape
                .copyOf()
                .also { it[0] = rows.sumOf { row -> row.shape[0] } }
        val data = FloatArray(rows.sumOf { it.data.size })
        var offset = 0
        for (row in rows) {
            row.data.copyInto(data, offset)
            offset += row.data.size
        }
        return FloatTensor(shape, data)
    }

    private fun row(
        tensor: FloatTensor,
        index: Int,
    ): FloatTensor {
        val size = tensor.data.size / tensor.shape[0]
        val shape = tensor.shape.copyOf().also { it[0] = 1 }
        return FloatTensor(shape, tensor.data.copyOfRange(index * size, (index + 1) * size))
    }
}

/** Wall-clock laps in milliseconds. */
internal class Stopwatch {
    private var start = System.nanoTime()

    fun lap(): Double {
        val now = System.nanoTime()
        val elapsed = (now - start) / 1e6
        start = now
        return elapsed
    }
}

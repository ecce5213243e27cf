package dev.sfmobile.core

import java.math.BigDecimal
import java.math.MathContext

/**
 * One image request. `seed` is the unsigned 64-bit seed of docs/noise.md held in a Long's bits
 * (`-1L` is 2^64 - 1; [java.lang.Long.parseUnsignedLong] reads one from text).
 *
 * Image-to-image: `initImage` (the bundle needs its `encoder`) and `strength` in (0, 1], how much
 * of the schedule runs (a Double, as Python's, so `steps * strength` truncates the same way).
 */
data class GenerationRequest(
    val prompt: String,
    val negativePrompt: String = "",
    val steps: Int,
    val guidance: Float,
    val seed: Long,
    val initImage: InitImage? = null,
    val strength: Double = Pipeline.DEFAULT_STRENGTH,
)

/**
 * Milliseconds spent in each stage of one generation (Python's Timings, in ms); unetMs has one
 * entry per UNet call. Written by the Pipeline (and by tests in this module), read by callers.
 */
class Timings {
    /** The image encoder and the noise mixing (image-to-image only). */
    var encoderMs: Double = 0.0
        internal set
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
        (
            "encoder %.1f ms, tokenize %.1f ms, text encoder %.1f ms, unet %.1f ms (%d calls), " +
                "scheduler %.1f ms, decoder %.1f ms, total %.1f ms"
        ).format(encoderMs, tokenizeMs, textEncoderMs, unetMs.sum(), unetMs.size, schedulerMs, decoderMs, totalMs)
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
 *
 * Image-to-image follows diffusers' StableDiffusionImg2ImgPipeline as Python does: the loop
 * starts at [img2imgStart], from the picture's latent mean (times the scaling factor) noised to
 * that step's timestep with the seed's noise ([DdimScheduler.addNoise]); the rest is the same loop.
 *
 * tileDecoder, as Python's `--tile-decoder/--no-tile-decoder`: null decodes in tiles whenever the
 * bundle has a tile decoder smaller than the latent ([TiledDecode]; a phone's peak memory is the
 * decoder's activations), false always whole, true always in tiles (refused here, before any
 * step, for a bundle without a tile decoder). The Pipeline calls only the decoder
 * [TiledDecode.decoderComponent] names, the one [dev.sfmobile.core.device.ModelFiles.resolve]
 * lists for the same choice, so an engine built from that list never holds the other.
 */
class Pipeline(
    private val manifest: Manifest,
    private val tokenizer: Tokenizer,
    private val engine: Engine,
    private val tileDecoder: Boolean? = null,
) {
    constructor(bundle: Bundle, engine: Engine, tileDecoder: Boolean? = null) :
        this(bundle.manifest, bundle.tokenizer(), engine, tileDecoder)

    private val scheduler = DdimScheduler(manifest.scheduler)
    private val latent = manifest.latent

    /** The latent side the decoder runs tiles at, null to decode whole. */
    private val tileSide = TiledDecode.tileSide(manifest.decoderTileSide, latent.height, latent.width, tileDecoder)

    /** Generate one image; onStep(done, total) after every step; isCancelled is asked before each step. */
    fun generate(
        request: GenerationRequest,
        onStep: (done: Int, total: Int) -> Unit = { _, _ -> },
        isCancelled: () -> Boolean = { false },
    ): Generation {
        val guidance = request.guidance
        if (!guidance.isFinite() || guidance < 0f) throw InputException("guidance must be finite and >= 0, got $guidance")
        val shape = latentShape()
        val all = scheduler.timesteps(request.steps)
        val init = request.initImage
        val start = if (init == null) 0 else img2imgStart(request.steps, request.strength)
        if (init != null && manifest.encoder == null) throw BundleException(Engine.NO_ENCODER)
        val pixels = init?.toTensor(manifest.image.height, manifest.image.width)
        val timesteps = all.copyOfRange(start, all.size)
        val timings = Timings()
        val total = Stopwatch()
        val watch = Stopwatch()
        var latents =
            if (pixels == null) {
                Noise.gaussian(request.seed, shape).data
            } else {
                imageLatents(pixels, request.seed, timesteps[0]).also { timings.encoderMs = watch.lap() }
            }

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
        val text = concatRows(rows)
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
        val decoder = TiledDecode.decoderComponent(manifest, tileDecoder)
        val decoded = checked(decoder, decode(FloatTensor(latentShape(), scaled)), null)
        timings.decoderMs = watch.lap()
        val image = manifest.image
        expectShape(decoder, decoded, intArrayOf(1, 3, image.height, image.width))
        val rgb = Pixels.toRgb(decoded)
        timings.totalMs = total.lap()
        return Generation(image.width, image.height, rgb, timings)
    }

    /** latents (divided by the scaling factor) [1, c, h, w] -> image [1, 3, H, W], whole or in tiles (Python's decode). */
    private fun decode(latents: FloatTensor): FloatTensor {
        val tile = tileSide ?: return engine.decode(latents)
        val factor = manifest.image.height / latent.height
        return TiledDecode.decode(latents, engine::decodeTile, tile, TiledDecode.defaultOverlap(tile), factor)
    }

    /** The picture's scaled latent mean noised to timestep t with the seed's noise (Python's image_latents). */
    private fun imageLatents(
        pixels: FloatTensor,
        seed: Long,
        t: Int,
    ): FloatArray {
        val shape = latentShape()
        val mean = engine.encodeImage(pixels)
        expectShape("encoder", mean, shape)
        checked("encoder", mean, null)
        val scale = latent.scalingFactor.toFloat()
        val x0 = FloatArray(mean.data.size) { mean.data[it] * scale }
        return scheduler.addNoise(x0, Noise.gaussian(seed, shape).data, t)
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
        val shape = latentShape()
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
            uncond = call(1, latents, rowOf(text, 0), null)
            cond = call(1, latents, rowOf(text, 1), null)
        }
        return FloatArray(n) { uncond[it] + guidanceScale * (cond[it] - uncond[it]) }
    }

    /** [1, c, h, w] of the bundle's latents. */
    private fun latentShape() = intArrayOf(1, latent.channels, latent.height, latent.width)

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

    companion object {
        /** diffusers' StableDiffusionImg2ImgPipeline default. */
        const val DEFAULT_STRENGTH = 0.8

        /**
         * The index of the first of `steps` timesteps image-to-image runs: the last
         * int(steps * strength) of them (Python's img2img_start, diffusers' get_timesteps).
         */
        fun img2imgStart(
            steps: Int,
            strength: Double,
        ): Int {
            if (!strength.isFinite() || strength <= 0.0 || strength > 1.0) {
                throw InputException("strength must be a finite number in (0, 1], got $strength")
            }
            val run = minOf((steps * strength).toInt(), steps)
            if (run < 1) {
                val lowest = BigDecimal(1.0 / steps).round(MathContext(3)).stripTrailingZeros().toPlainString()
                throw InputException(
                    "strength $strength of $steps steps runs no step: use strength >= $lowest or more steps",
                )
            }
            return steps - run
        }
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

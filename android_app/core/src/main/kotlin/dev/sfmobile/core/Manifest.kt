package dev.sfmobile.core

import com.google.gson.JsonObject

/** The exported image size in pixels. */
data class ImageSpec(
    val height: Int,
    val width: Int,
)

/** Latent channels and size; latents are divided by scalingFactor before the decoder. */
data class LatentSpec(
    val channels: Int,
    val height: Int,
    val width: Int,
    val scalingFactor: Double,
)

/** Paths (relative to the bundle folder) of the CLIP files, and the special ids. */
data class TokenizerSpec(
    val vocab: String,
    val merges: String,
    val maxLength: Int,
    val startId: Int,
    val endId: Int,
    val padId: Int,
)

/**
 * cfgBatch: the UNet's static batch (2 = [uncond, cond] in one call, 1 = two calls); input: the UNet takes guidance;
 * distilledRange: the guidance scales a distilled model was trained for (images degrade outside it), null when unrecorded.
 */
data class GuidanceSpec(
    val cfgBatch: Int,
    val input: Boolean,
    val distilledRange: ClosedFloatingPointRange<Double>? = null,
) {
    /** The warning for [guidance] outside [distilledRange] ([GuidanceWarning]), null inside it or without one. */
    fun warning(guidance: Double): String? = GuidanceWarning.of(guidance, distilledRange)
}

/** One LoRA file merged into the weights before export (docs/lora.md): its name, sha256 and scale. */
data class LoraEntry(
    val file: String,
    val sha256: String,
    val scale: Double,
)

/**
 * Who wrote the bundle and how: the recipe's format, precision and quantization, and the LoRA
 * files merged into the weights, in order (empty when none; sourceSha256 covers the merged weights).
 */
data class CreatedBy(
    val sfmobileVersion: String,
    val source: String,
    val sourceSha256: String,
    val format: String,
    val precision: String,
    val quantization: String?,
    val lora: List<LoraEntry> = emptyList(),
)

/** One file of the bundle: its sha256 (lowercase hex) and size. */
data class FileEntry(
    val sha256: String,
    val bytes: Long,
)

/**
 * manifest.json, checked against export/manifest.schema.json rule for rule (what Python's
 * jsonschema refuses, this refuses, naming the field). See export/README.md for the meaning.
 */
class Manifest(
    val components: Map<String, ComponentSpec>,
    val scheduler: SchedulerConfig,
    val image: ImageSpec,
    val latent: LatentSpec,
    val tokenizer: TokenizerSpec,
    val guidance: GuidanceSpec,
    val createdBy: CreatedBy,
    val files: Map<String, FileEntry>,
    /** QNN bundles only (components of format qnn): the SoC and node placement; null otherwise. */
    val qnn: QnnSpec? = null,
) {
    /** A component the manifest has; an absent one (only `encoder` may be) is a BundleException naming it. */
    fun component(name: String): ComponentSpec =
        components[name] ?: throw BundleException(if (name == ENCODER) Engine.NO_ENCODER else "the manifest has no component '$name'")

    /** The optional image encoder (image-to-image; `export --with-encoder`), null when the bundle has none. */
    val encoder: ComponentSpec? get() = components[ENCODER]

    /** The latent side t of the optional tile decoder ([1, c, t, t] -> [1, 3, 8t, 8t]; [TiledDecode]), null without one. */
    val decoderTileSide: Int?
        get() {
            val input = components[DECODER_TILE]?.inputs?.first() ?: return null
            return input.shape.last()
        }

    companion object {
        const val FORMAT = "sfmobile-bundle"
        const val FORMAT_VERSION = 1L

        /** The components every bundle has. */
        val COMPONENT_NAMES = listOf("text_encoder", "unet", "decoder")

        /** The optional component image-to-image needs. */
        const val ENCODER = "encoder"

        /** The optional tile-size decoder (export --decoder-tile) the [Pipeline] decodes in tiles with ([TiledDecode]). */
        const val DECODER_TILE = "decoder_tile"
        private val SHA256 = Regex("^[0-9a-f]{64}$")
        private val SCHEDULER_KEYS =
            listOf(
                "num_train_timesteps",
                "beta_start",
                "beta_end",
                "beta_schedule",
                "prediction_type",
                "timestep_spacing",
                "steps_offset",
                "set_alpha_to_one",
                "clip_sample",
                "clip_sample_range",
                "default_steps",
                "default_guidance",
            )

        /** Parse and validate manifest text; `where` (the manifest's path) starts every error. */
        fun parse(
            text: String,
            where: String,
        ): Manifest {
            val fail = { path: String, message: String ->
                throw BundleException("$where: manifest invalid at ${path.ifEmpty { "(root)" }}: $message")
            }
            val json = StrictJson.parse(text, fail)
            val root = (json as? JsonObject)?.let { JsonFields(it, "", fail) } ?: fail("", "$json is not of type 'object'")
            return read(root).also { QnnSection.checkPresence(it, where) }
        }

        private fun read(root: JsonFields): Manifest {
            val top =
                listOf(
                    "format",
                    "format_version",
                    "components",
                    "scheduler",
                    "image",
                    "latent",
                    "tokenizer",
                    "guidance",
                    "created_by",
                    "files",
                )
            root.keys(top, top + "qnn")
            root.enum("format", listOf(FORMAT))
            root.intEnum("format_version", listOf(FORMAT_VERSION))
            val optional = listOf(ENCODER, DECODER_TILE)
            val components = root.obj("components").keys(COMPONENT_NAMES, COMPONENT_NAMES + optional)
            val present = (COMPONENT_NAMES + optional).filter { components.has(it) }
            return Manifest(
                components = present.associateWith { ComponentSection.read(components.obj(it)) },
                scheduler = scheduler(root.obj("scheduler")),
                image = root.obj("image").keys(listOf("height", "width")).let { ImageSpec(it.int("height", 8), it.int("width", 8)) },
                latent = latent(root.obj("latent")),
                tokenizer = tokenizer(root.obj("tokenizer")),
                guidance = guidance(root.obj("guidance")),
                createdBy = createdBy(root.obj("created_by")),
                files = files(root.obj("files")),
                qnn = if (root.has("qnn")) QnnSection.read(root.obj("qnn")) else null,
            )
        }

        private fun JsonFields.int(
            name: String,
            minimum: Long? = null,
        ): Int = integer(name, minimum).also { if (it !in Int.MIN_VALUE..Int.MAX_VALUE) refuse(name, "$it is out of range") }.toInt()

        private fun guidance(g: JsonFields): GuidanceSpec {
            g.keys(listOf("cfg_batch", "input"), listOf("cfg_batch", "input", "distilled_range"))
            val range =
                if (g.has("distilled_range")) {
                    val values = g.array("distilled_range")
                    if (values.size() != 2) g.refuse("distilled_range", "$values should have 2 items")
                    val (low, high) = values.mapIndexed { i, v -> g.numberOf(v, g.at("distilled_range/$i"), minimum = 0.0) }
                    low..high
                } else {
                    null
                }
            return GuidanceSpec(g.intEnum("cfg_batch", listOf(1, 2)).toInt(), g.bool("input"), range)
        }

        private fun scheduler(s: JsonFields): SchedulerConfig {
            s.keys(SCHEDULER_KEYS)
            return try {
                SchedulerConfig(
                    numTrainTimesteps = s.int("num_train_timesteps", 1),
                    betaStart = s.number("beta_start"),
                    betaEnd = s.number("beta_end"),
                    betaSchedule = s.enum("beta_schedule", listOf("scaled_linear", "linear", "squaredcos_cap_v2")),
                    predictionType = s.enum("prediction_type", listOf("epsilon", "v_prediction")),
                    timestepSpacing = s.enum("timestep_spacing", listOf("leading", "trailing", "linspace")),
                    stepsOffset = s.int("steps_offset", 0),
                    setAlphaToOne = s.bool("set_alpha_to_one"),
                    clipSample = s.bool("clip_sample"),
                    clipSampleRange = s.number("clip_sample_range"),
                    defaultSteps = s.int("default_steps", 1),
                    defaultGuidance = s.number("default_guidance"),
                )
            } catch (error: ConfigException) {
                s.refuse("", error.message ?: "invalid") // a value the schema allows but the scheduler cannot use
            }
        }

        private fun latent(l: JsonFields): LatentSpec {
            l.keys(listOf("channels", "height", "width", "scaling_factor"))
            return LatentSpec(
                l.int("channels", 1),
                l.int("height", 1),
                l.int("width", 1),
                l.number("scaling_factor", exclusiveMinimum = 0.0),
            )
        }

        private fun tokenizer(t: JsonFields): TokenizerSpec {
            t.keys(listOf("vocab", "merges", "max_length", "start_id", "end_id", "pad_id"))
            val maxLength = t.intEnum("max_length", listOf(Tokenizer.MAX_LENGTH.toLong())).toInt()
            val vocab = t.relativePath(t.string("vocab"), "vocab")
            val merges = t.relativePath(t.string("merges"), "merges")
            return TokenizerSpec(vocab, merges, maxLength, t.int("start_id"), t.int("end_id"), t.int("pad_id"))
        }

        private fun createdBy(c: JsonFields): CreatedBy {
            c.keys(listOf("sfmobile_version", "source", "source_sha256", "recipe"), closed = false)
            val sha = c.string("source_sha256")
            if (!SHA256.matches(sha)) c.refuse("source_sha256", "'$sha' does not match '^[0-9a-f]{64}$'")
            val recipe = c.obj("recipe").keys(listOf("format", "precision"), closed = false)
            val quantization = recipe.enumOrNull("quantization", listOf("dynamic", "static")) // absent = null
            if (recipe.has("calibration") && !recipe.element("calibration").isJsonNull) {
                val calibration = recipe.obj("calibration").keys(listOf("prompts", "seed", "steps"), closed = false)
                calibration.integer("prompts", 1)
                calibration.integer("seed", 0)
                calibration.integer("steps", 1)
                if (calibration.has("guidance")) calibration.number("guidance")
            }
            return CreatedBy(
                c.string("sfmobile_version"),
                c.string("source"),
                sha,
                recipe.enum("format", ComponentSection.FORMATS),
                recipe.enum("precision", listOf("fp32", "fp16", "int8") + QnnSection.PRECISIONS),
                quantization,
                if (recipe.has("lora")) loras(recipe) else emptyList(),
            )
        }

        /** recipe.lora: an array (never null) of {file, sha256, scale}, nothing else in an entry. */
        private fun loras(recipe: JsonFields): List<LoraEntry> =
            (0 until recipe.array("lora").size()).map { i ->
                val entry = recipe.objectAt("lora", i).keys(listOf("file", "sha256", "scale"))
                val sha = entry.string("sha256")
                if (!SHA256.matches(sha)) entry.refuse("sha256", "'$sha' does not match '^[0-9a-f]{64}$'")
                LoraEntry(entry.string("file"), sha, entry.number("scale"))
            }

        /**
         * Closure rule 1 (export/README.md; the schema's `$defs.relative_path`): '/'-separated
         * non-empty segments, none `.` or `..`, no backslash, colon or control character anywhere.
         */
        fun isRelativePath(path: String): Boolean =
            path.split('/').none { it.isEmpty() || it == "." || it == ".." } && path.none { it == '\\' || it == ':' || it < ' ' }

        /** Every file but manifest.json (closure rule 2), each by a relative path (rule 1). */
        private fun files(f: JsonFields): Map<String, FileEntry> =
            f.entries().associate { (name, _) ->
                f.relativePath(name, "")
                if (name == Bundle.MANIFEST) f.refuse("", "'$name' is not allowed here")
                val entry = f.obj(name).keys(listOf("sha256", "bytes"))
                val sha = entry.string("sha256")
                if (!SHA256.matches(sha)) entry.refuse("sha256", "'$sha' does not match '^[0-9a-f]{64}$'")
                name to FileEntry(sha, entry.integer("bytes", 0))
            }
    }
}

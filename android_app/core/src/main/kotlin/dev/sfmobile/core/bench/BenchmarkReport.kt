package dev.sfmobile.core.bench

import com.google.gson.GsonBuilder
import com.google.gson.JsonArray
import com.google.gson.JsonObject
import com.google.gson.JsonParser
import dev.sfmobile.core.Bundle
import dev.sfmobile.core.Timings
import java.io.File

/** The phone the session ran on (schema `device`). [soc] is Build.SOC_MODEL, "unknown" below API 31. */
data class DeviceInfo(
    val manufacturer: String,
    val model: String,
    val soc: String,
    val androidVersion: String,
    val sdkInt: Int,
    val totalMemoryMb: Double,
    val availableMemoryMb: Double? = null,
)

/** Schema `backend`: the backend id, the accelerator that ran, the runtime's version. */
data class BackendInfo(
    val name: String,
    val accelerator: String,
    val runtimeVersion: String? = null,
)

/** Schema `bundle`: folder name, the manifest's `created_by.recipe` as is, manifest sha256, bytes. */
data class BundleInfo(
    val name: String,
    val recipe: JsonObject = JsonObject(),
    val manifestSha256: String? = null,
    val bytes: Long? = null,
) {
    companion object {
        /**
         * The facts of the bundle in [dir] called [name], read from its manifest.json text as is
         * (the recipe is copied, not re-serialised from a typed view, so new recipe fields pass
         * through); a manifest that cannot be read gives an empty recipe and no sha256, as a
         * report about a refused bundle still names it.
         */
        fun read(
            name: String,
            dir: File,
            bytes: Long?,
        ): BundleInfo {
            val manifest = File(dir, Bundle.MANIFEST)
            val recipe =
                runCatching {
                    JsonParser
                        .parseString(manifest.readText())
                        .asJsonObject
                        .getAsJsonObject("created_by")
                        .getAsJsonObject("recipe")
                }.getOrNull()
            val sha = if (manifest.isFile) runCatching { Bundle.sha256Of(manifest) }.getOrNull() else null
            return BundleInfo(name, recipe ?: JsonObject(), sha, bytes)
        }
    }
}

/** Schema `settings`: what every run generated. */
data class BenchmarkSettings(
    val prompt: String,
    val negativePrompt: String,
    val steps: Int,
    val guidance: Float,
    val seed: Long,
    val warmupRuns: Int,
    val runs: Int,
    val cfgBatch: Int,
    /** The tile-decoder choice: `auto`, `on` or `off` ([dev.sfmobile.core.TiledDecode.CHOICES]). */
    val tileDecoder: String = "auto",
    /** The one decoder component loaded and run (`decoder` or `decoder_tile`), null when not decided. */
    val decoder: String? = null,
) {
    init {
        require(steps >= 1 && runs >= 1 && warmupRuns >= 0 && seed >= 0) {
            "steps and runs must be >= 1, warmup runs and seed >= 0"
        }
        require(cfgBatch == 1 || cfgBatch == 2) { "cfg_batch must be 1 or 2, got $cfgBatch" }
        require(tileDecoder in listOf("auto", "on", "off")) { "tile_decoder must be auto, on or off, got $tileDecoder" }
        require(decoder == null || decoder == "decoder" || decoder == "decoder_tile") {
            "decoder must be decoder or decoder_tile, got $decoder"
        }
    }
}

/** Schema `thermal`: battery temperature (degrees C) and PowerManager thermal status, before and after. */
data class Thermal(
    val batteryCBefore: Double? = null,
    val batteryCAfter: Double? = null,
    val thermalStatusBefore: Int? = null,
    val thermalStatusAfter: Int? = null,
)

/** One timed run (schema `runs[]`), milliseconds; [unetMs] has one entry per UNet call. */
data class RunRecord(
    val textEncoderMs: Double,
    val unetMs: List<Double>,
    val decoderMs: Double,
    val totalMs: Double,
    val tokenizeMs: Double? = null,
    val schedulerMs: Double? = null,
    val peakMemoryMb: Double? = null,
) {
    companion object {
        /** The record of a generation's [timings], with the process's peak memory after it. */
        fun of(
            timings: Timings,
            peakMemoryMb: Double?,
        ): RunRecord =
            RunRecord(
                textEncoderMs = timings.textEncoderMs,
                unetMs = timings.unetMs.toList(),
                decoderMs = timings.decoderMs,
                totalMs = timings.totalMs,
                tokenizeMs = timings.tokenizeMs,
                schedulerMs = timings.schedulerMs,
                peakMemoryMb = peakMemoryMb,
            )
    }
}

/** How a session ended (schema `status`). */
enum class BenchmarkStatus(
    val wire: String,
) {
    OK("ok"),
    FAILED("failed"),
    CANCELLED("cancelled"),
}

/**
 * One benchmark session's result, written as android_app/benchmark-result.schema.json
 * (format version 1) describes it; the schema is the contract with benchmarks/adb_bench.py.
 */
data class BenchmarkReport(
    val sessionId: String,
    val startedAt: String,
    val status: BenchmarkStatus,
    val device: DeviceInfo,
    val backend: BackendInfo,
    val bundle: BundleInfo,
    val settings: BenchmarkSettings,
    val runs: List<RunRecord>,
    val error: String? = null,
    val appVersion: String? = null,
    val loadMs: Double? = null,
    val thermal: Thermal? = null,
    val cooldown: HostCooldown? = null,
) {
    init {
        require(SessionIds.isValid(sessionId)) { "session id '$sessionId' does not match ${SessionIds.PATTERN.pattern}" }
        require((status == BenchmarkStatus.OK) == (error == null)) { "error is required exactly when status is not ok" }
        require(status != BenchmarkStatus.OK || runs.size == settings.runs) {
            "status ok needs all ${settings.runs} runs, got ${runs.size}"
        }
        val times = runs.flatMap { listOfNotNull(it.textEncoderMs, it.decoderMs, it.totalMs, it.tokenizeMs, it.schedulerMs) + it.unetMs }
        require((times + listOfNotNull(loadMs)).all { it.isFinite() && it >= 0 }) { "times must be finite and >= 0" }
    }

    /** The JSON document, keys as the schema names them, absent values left out. */
    fun toJson(): String = GSON.toJson(toJsonObject()) + "\n"

    fun toJsonObject(): JsonObject =
        JsonObject().apply {
            addProperty("format", FORMAT)
            addProperty("format_version", FORMAT_VERSION)
            addProperty("session_id", sessionId)
            addProperty("started_at", startedAt)
            appVersion?.let { addProperty("app_version", it) }
            addProperty("status", status.wire)
            error?.let { addProperty("error", it) }
            add("device", device.toJson())
            add("backend", backend.toJson())
            add("bundle", bundle.toJson())
            add("settings", settings.toJson())
            loadMs?.let { addProperty("load_ms", it) }
            thermal?.let { add("thermal", it.toJson()) }
            cooldown?.let { add("cooldown", it.toJson()) }
            add("runs", JsonArray().apply { runs.forEach { add(it.toJson()) } })
        }

    /**
     * Writes `<dir>/<session_id>.json` through a temporary file renamed into place, so a reader
     * polling the folder never sees half a file; returns the file.
     */
    fun writeTo(dir: File): File {
        if (!dir.isDirectory && !dir.mkdirs()) throw java.io.IOException("cannot create ${dir.path}")
        val target = File(dir, "$sessionId.json")
        val partial = File(dir, ".$sessionId.json.partial")
        partial.writeText(toJson())
        if (!partial.renameTo(target)) {
            partial.delete()
            throw java.io.IOException("cannot rename ${partial.path} to ${target.path}")
        }
        return target
    }

    companion object {
        const val FORMAT = "sfmobile-benchmark"
        const val FORMAT_VERSION = 1
        private val GSON =
            GsonBuilder()
                .setPrettyPrinting()
                .serializeNulls()
                .disableHtmlEscaping()
                .create()
    }
}

private fun DeviceInfo.toJson() =
    JsonObject().apply {
        addProperty("manufacturer", manufacturer)
        addProperty("model", model)
        addProperty("soc", soc)
        addProperty("android_version", androidVersion)
        addProperty("sdk_int", sdkInt)
        addProperty("total_memory_mb", totalMemoryMb)
        availableMemoryMb?.let { addProperty("available_memory_mb", it) }
    }

private fun BackendInfo.toJson() =
    JsonObject().apply {
        addProperty("name", name)
        addProperty("accelerator", accelerator)
        runtimeVersion?.let { addProperty("runtime_version", it) }
    }

private fun BundleInfo.toJson() =
    JsonObject().apply {
        addProperty("name", name)
        add("recipe", recipe.deepCopy())
        manifestSha256?.let { addProperty("manifest_sha256", it) }
        bytes?.let { addProperty("bytes", it) }
    }

private fun BenchmarkSettings.toJson() =
    JsonObject().apply {
        addProperty("prompt", prompt)
        addProperty("negative_prompt", negativePrompt)
        addProperty("steps", steps)
        // Float.toString is the shortest decimal that reads back as the same float: 7.3f -> 7.3.
        addProperty("guidance", guidance.toString().toDouble())
        addProperty("seed", seed)
        addProperty("warmup_runs", warmupRuns)
        addProperty("runs", runs)
        addProperty("cfg_batch", cfgBatch)
        addProperty("tile_decoder", tileDecoder)
        decoder?.let { addProperty("decoder", it) }
    }

private fun Thermal.toJson() =
    JsonObject().apply {
        batteryCBefore?.let { addProperty("battery_c_before", it) }
        batteryCAfter?.let { addProperty("battery_c_after", it) }
        thermalStatusBefore?.let { addProperty("thermal_status_before", it) }
        thermalStatusAfter?.let { addProperty("thermal_status_after", it) }
    }

private fun HostCooldown.toJson() =
    JsonObject().apply {
        addProperty("thermal_status_before", thermalStatusBefore)
        addProperty("thermal_status_after", thermalStatusAfter)
        addProperty("waited_s", waitedS)
    }

private fun RunRecord.toJson() =
    JsonObject().apply {
        tokenizeMs?.let { addProperty("tokenize_ms", it) }
        addProperty("text_encoder_ms", textEncoderMs)
        add("unet_ms", JsonArray().apply { unetMs.forEach { add(it) } })
        schedulerMs?.let { addProperty("scheduler_ms", it) }
        addProperty("decoder_ms", decoderMs)
        addProperty("total_ms", totalMs)
        peakMemoryMb?.let { addProperty("peak_memory_mb", it) }
    }

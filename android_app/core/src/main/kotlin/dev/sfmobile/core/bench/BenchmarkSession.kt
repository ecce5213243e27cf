package dev.sfmobile.core.bench

import dev.sfmobile.core.Bundle
import dev.sfmobile.core.Manifest
import dev.sfmobile.core.Pipeline
import dev.sfmobile.core.TiledDecode
import dev.sfmobile.core.device.Backend
import dev.sfmobile.core.device.BundleCatalog
import dev.sfmobile.core.device.DeviceMemory
import dev.sfmobile.core.device.LoadedEngine
import dev.sfmobile.core.device.MemoryPolicy
import dev.sfmobile.core.device.ModelFiles
import dev.sfmobile.core.device.ProcessMemory
import java.io.File
import java.time.OffsetDateTime

/** Battery temperature in degrees C and PowerManager's thermal status, either null when unknown. */
data class ThermalReading(
    val batteryC: Double?,
    val status: Int?,
)

/** What a benchmark session needs from the phone; the Android app implements it, tests fake it. */
interface BenchmarkPlatform {
    val appVersion: String?

    fun device(): DeviceInfo

    fun thermal(): ThermalReading

    fun memory(): DeviceMemory

    /**
     * Creates the sessions of the components of [modelFiles] (component to bundle-relative path,
     * from ModelFiles.resolve: the text encoder, the UNet and one decoder).
     */
    fun loadEngine(
        bundle: Bundle,
        backend: Backend,
        modelFiles: Map<String, String>,
    ): LoadedEngine
}

/**
 * One benchmark session, start to result file: find the bundle, refuse it when it does not fit
 * in memory, open and verify it, load the engine (timed: `load_ms`), run the warm-up and timed
 * generations, read the temperatures before and after, and write `<session_id>.json` into
 * [resultsDir]. Whatever fails, the session ends with a report (status `failed` and the error),
 * so the adb script always has a file to pull.
 */
class BenchmarkSession(
    private val platform: BenchmarkPlatform,
    private val bundles: BundleCatalog,
    private val resultsDir: File,
    private val now: () -> OffsetDateTime = { OffsetDateTime.now() },
    private val peakMemoryMb: () -> Double? = ProcessMemory::peakResidentMb,
    private val memoryPolicy: MemoryPolicy = MemoryPolicy(),
) {
    fun run(
        args: BenchmarkArgs,
        isCancelled: () -> Boolean = { false },
    ): BenchmarkReport {
        val started = now()
        val device = platform.device()
        val before = platform.thermal()
        var bundleInfo = BundleInfo(args.bundle)
        var manifest: Manifest? = null
        var backendInfo = BackendInfo(args.backend.id, args.backend.accelerator)
        var loadMs: Double? = null
        val outcome =
            try {
                val bundle =
                    bundles.open(args.bundle, platform.memory(), memoryPolicy) { entry ->
                        bundleInfo = BundleInfo.read(entry.name, entry.dir, entry.bytes)
                    }
                manifest = bundle.manifest
                // One decoder, decided before loading: with tiling the full decoder is never compiled.
                val files = ModelFiles.resolve(bundle.manifest, args.backend, args.tileDecoder)
                val start = System.nanoTime()
                platform.loadEngine(bundle, args.backend, files).use { loaded ->
                    loadMs = (System.nanoTime() - start) / 1e6
                    backendInfo = BackendInfo(args.backend.id, loaded.accelerator, loaded.runtimeVersion)
                    val pipeline = Pipeline(bundle, loaded.engine, args.tileDecoder)
                    val scheduler = bundle.manifest.scheduler
                    val request = args.request(scheduler.defaultSteps, scheduler.defaultGuidance.toFloat())
                    BenchmarkRunner(args.warmupRuns, args.runs, peakMemoryMb).run(isCancelled) {
                        pipeline.generate(request, isCancelled = isCancelled).timings
                    }
                }
            } catch (e: Exception) {
                RunOutcome(BenchmarkStatus.FAILED, listOf(), describeFailure(e))
            } catch (e: OutOfMemoryError) {
                RunOutcome(BenchmarkStatus.FAILED, listOf(), "out of memory loading bundle '${args.bundle}'")
            }
        val after = platform.thermal()
        val report =
            BenchmarkReport(
                sessionId = args.sessionId ?: SessionIds.of(started, device.model, args.backend.id),
                startedAt = SessionIds.timestamp(started),
                appVersion = platform.appVersion,
                status = outcome.status,
                error = outcome.error,
                device = device,
                backend = backendInfo,
                bundle = bundleInfo,
                settings = settings(args, manifest),
                loadMs = loadMs,
                thermal = Thermal(before.batteryC, after.batteryC, before.status, after.status),
                cooldown = args.cooldown,
                runs = outcome.runs,
            )
        report.writeTo(resultsDir)
        return report
    }

    /**
     * What the runs generate. Before the manifest is read (a missing or refused bundle) the
     * report still needs settings: the extras, else the recipe's 8 steps, guidance 7.5, batch 2.
     */
    private fun settings(
        args: BenchmarkArgs,
        manifest: Manifest?,
    ): BenchmarkSettings {
        val request =
            args.request(
                manifest?.scheduler?.defaultSteps ?: FALLBACK_STEPS,
                manifest?.scheduler?.defaultGuidance?.toFloat() ?: FALLBACK_GUIDANCE,
            )
        return BenchmarkSettings(
            prompt = request.prompt,
            negativePrompt = request.negativePrompt,
            steps = request.steps,
            guidance = request.guidance,
            seed = request.seed,
            warmupRuns = args.warmupRuns,
            runs = args.runs,
            cfgBatch = manifest?.guidance?.cfgBatch ?: FALLBACK_CFG_BATCH,
            tileDecoder = TiledDecode.choiceName(args.tileDecoder),
            decoder = manifest?.let { runCatching { TiledDecode.decoderComponent(it, args.tileDecoder) }.getOrNull() },
        )
    }

    private companion object {
        const val FALLBACK_STEPS = 8
        const val FALLBACK_GUIDANCE = 7.5f
        const val FALLBACK_CFG_BATCH = 2
    }
}

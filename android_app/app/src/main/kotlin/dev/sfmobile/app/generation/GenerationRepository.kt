package dev.sfmobile.app.generation

import android.content.Context
import android.graphics.Bitmap
import dev.sfmobile.app.bundles.BundleStore
import dev.sfmobile.app.engine.EngineFactory
import dev.sfmobile.app.gallery.ImageExport
import dev.sfmobile.core.CancelledException
import dev.sfmobile.core.GenerationRequest
import dev.sfmobile.core.Pipeline
import dev.sfmobile.core.Timings
import dev.sfmobile.core.bench.describeFailure
import dev.sfmobile.core.device.Backend
import dev.sfmobile.core.device.LoadedEngine
import dev.sfmobile.core.device.ModelFiles
import dev.sfmobile.core.device.rgbToArgb
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import java.io.File
import java.util.concurrent.atomic.AtomicBoolean

/** One image to make: which bundle, on which backend, with what request. */
data class GenerationJob(
    val bundle: String,
    val backend: Backend,
    val request: GenerationRequest,
)

/** A finished image: the bitmap shown, its PNG in the cache folder (for sharing) and the run's timings. */
class GenerationResult(
    val job: GenerationJob,
    val image: Bitmap,
    val png: File,
    val timings: Timings,
)

/** What the generation service is doing; the screen's UiState is built from it. */
sealed interface GenerationStatus {
    data object Idle : GenerationStatus

    data class Loading(
        val bundle: String,
    ) : GenerationStatus

    data class Running(
        val step: Int,
        val total: Int,
    ) : GenerationStatus

    data class Finished(
        val result: GenerationResult,
    ) : GenerationStatus

    data class Failed(
        val message: String,
    ) : GenerationStatus
}

/**
 * The process's generation state and its one loaded model. The service runs jobs through [run];
 * the screen and the notification observe [status]. A model stays loaded between jobs with the
 * same bundle and backend (loading is the slow part) and is released when either changes, when
 * the benchmark needs the memory, or when the system asks for it.
 */
object GenerationRepository {
    private val mutableStatus = MutableStateFlow<GenerationStatus>(GenerationStatus.Idle)
    val status: StateFlow<GenerationStatus> = mutableStatus.asStateFlow()

    private val cancelled = AtomicBoolean(false)
    private val lock = Any()
    private var loaded: LoadedModel? = null

    private class LoadedModel(
        val bundle: String,
        val backend: Backend,
        val engine: LoadedEngine,
        val pipeline: Pipeline,
    )

    /** Asks the running job to stop before its next step. */
    fun cancel() = cancelled.set(true)

    /** Runs [job] on the calling (worker) thread; every outcome ends in [status]. */
    fun run(
        context: Context,
        job: GenerationJob,
    ) {
        cancelled.set(false)
        mutableStatus.value =
            try {
                val pipeline = pipelineFor(context, job)
                mutableStatus.value = GenerationStatus.Running(0, job.request.steps)
                val generation =
                    pipeline.generate(
                        job.request,
                        onStep = { done, total -> mutableStatus.value = GenerationStatus.Running(done, total) },
                        isCancelled = cancelled::get,
                    )
                val pixels = rgbToArgb(generation.rgb, generation.width, generation.height)
                val image = Bitmap.createBitmap(pixels, generation.width, generation.height, Bitmap.Config.ARGB_8888)
                GenerationStatus.Finished(GenerationResult(job, image, ImageExport.writeCachePng(context, image), generation.timings))
            } catch (e: CancelledException) {
                GenerationStatus.Failed("Cancelled")
            } catch (e: OutOfMemoryError) {
                release()
                GenerationStatus.Failed("Out of memory: the model was released; try a smaller bundle (fp16 or int8)")
            } catch (e: Exception) {
                GenerationStatus.Failed(describeFailure(e))
            }
    }

    /** Closes the loaded model, if any. */
    fun release() =
        synchronized(lock) {
            loaded?.engine?.close()
            loaded = null
        }

    private fun pipelineFor(
        context: Context,
        job: GenerationJob,
    ): Pipeline =
        synchronized(lock) {
            loaded?.takeIf { it.bundle == job.bundle && it.backend == job.backend }?.let { return it.pipeline }
            release()
            mutableStatus.value = GenerationStatus.Loading(job.bundle)
            val store = BundleStore(context)
            val bundle = store.catalog.open(job.bundle, store.memory())
            // One tile-decoder choice (auto) for both: the engine loads only the decoder the Pipeline runs.
            val tileDecoder: Boolean? = null
            val engine = EngineFactory.load(context, bundle, job.backend, ModelFiles.resolve(bundle.manifest, job.backend, tileDecoder))
            val pipeline = Pipeline(bundle, engine.engine, tileDecoder)
            loaded = LoadedModel(job.bundle, job.backend, engine, pipeline)
            pipeline
        }
}

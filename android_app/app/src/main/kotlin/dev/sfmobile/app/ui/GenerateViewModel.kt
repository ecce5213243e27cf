package dev.sfmobile.app.ui

import android.app.Application
import android.os.Build
import androidx.lifecycle.AndroidViewModel
import androidx.lifecycle.viewModelScope
import dev.sfmobile.app.bundles.BundleStore
import dev.sfmobile.app.gallery.ImageExport
import dev.sfmobile.app.generation.GenerationJob
import dev.sfmobile.app.generation.GenerationRepository
import dev.sfmobile.app.generation.GenerationResult
import dev.sfmobile.app.generation.GenerationService
import dev.sfmobile.core.SfmobileException
import dev.sfmobile.core.device.Backend
import dev.sfmobile.core.device.guidanceWarning
import dev.sfmobile.core.device.parseRequest
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.SharingStarted
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.flow.map
import kotlinx.coroutines.flow.stateIn
import kotlinx.coroutines.flow.update
import kotlinx.coroutines.launch
import java.io.IOException

/** Builds the generate screen's [FormState] and [UiState]; the work itself runs in the GenerationService. */
class GenerateViewModel(
    application: Application,
) : AndroidViewModel(application) {
    private val store = BundleStore(application)
    private val mutableForm = MutableStateFlow(FormState())
    val form: StateFlow<FormState> = mutableForm.asStateFlow()

    val uiState: StateFlow<UiState> =
        GenerationRepository.status
            .map { it.toUiState() }
            .stateIn(viewModelScope, SharingStarted.WhileSubscribed(STOP_TIMEOUT_MS), GenerationRepository.status.value.toUiState())

    init {
        refreshBundles()
    }

    /** Lists `files/bundles/` again (after an adb push) and keeps the chosen bundle when it is still there. */
    fun refreshBundles() {
        viewModelScope.launch(Dispatchers.IO) {
            val listed =
                try {
                    store.catalog.summaries() to store.root.path
                } catch (e: SfmobileException) {
                    mutableForm.update { it.copy(error = e.message) }
                    return@launch
                }
            val (summaries, folder) = listed
            mutableForm.update { form ->
                val chosen =
                    summaries.firstOrNull { it.name == form.bundle && it.problem == null } ?: summaries.firstOrNull { it.problem == null }
                form.copy(bundles = summaries, bundlesFolder = folder, error = null).withBundle(chosen?.name).withGuidanceWarning()
            }
        }
    }

    fun selectBundle(name: String) = mutableForm.update { it.withBundle(name).withGuidanceWarning() }

    fun selectBackend(backend: Backend) = mutableForm.update { it.copy(backend = backend, error = null) }

    fun edit(change: FormState.() -> FormState) = mutableForm.update { it.change().copy(error = null).withGuidanceWarning() }

    fun generate() {
        val form = mutableForm.value
        val bundle = form.bundle ?: return mutableForm.update { it.copy(error = "no bundle: push one to ${form.bundlesFolder}") }
        try {
            val request = parseRequest(form.prompt, form.negativePrompt, form.steps, form.guidance, form.seed)
            GenerationService.start(getApplication<Application>(), GenerationJob(bundle, form.backend, request))
        } catch (e: SfmobileException) {
            mutableForm.update { it.copy(error = e.message) }
        }
    }

    fun cancel() = GenerationService.cancel(getApplication<Application>())

    fun saveToGallery(result: GenerationResult) {
        viewModelScope.launch(Dispatchers.IO) {
            val notice =
                try {
                    ImageExport.saveToGallery(getApplication<Application>(), result.png)
                    "Saved to Pictures/sfmobile"
                } catch (e: IOException) {
                    "Could not save: ${e.message}"
                }
            mutableForm.update { it.copy(notice = notice) }
        }
    }

    fun dismissNotice() = mutableForm.update { it.copy(notice = null) }

    /**
     * Chooses bundle [name]: the backends that run its format (NNAPI last from Android 15, where it
     * is deprecated), the current backend kept when it still fits, and the manifest's defaults.
     */
    private fun FormState.withBundle(name: String?): FormState {
        val summary = bundles.firstOrNull { it.name == name } ?: return copy(bundle = null)
        val format = summary.format ?: return copy(bundle = name, error = summary.problem)
        val sdk = Build.VERSION.SDK_INT
        val backends = Backend.forFormat(format).sortedBy { it.isDeprecatedOn(sdk) }
        return copy(
            bundle = name,
            backends = backends,
            backend = backend.takeIf { it in backends } ?: Backend.defaultFor(format),
            steps = summary.defaultSteps?.toString() ?: steps,
            guidance = summary.defaultGuidance?.toString() ?: guidance,
            error = null,
        )
    }

    /** The warning for this guidance on the chosen bundle, kept in step with both (the rule is the core's). */
    private fun FormState.withGuidanceWarning(): FormState =
        copy(guidanceWarning = guidanceWarning(bundles.firstOrNull { it.name == bundle }, guidance))

    private companion object {
        const val STOP_TIMEOUT_MS = 5_000L
    }
}

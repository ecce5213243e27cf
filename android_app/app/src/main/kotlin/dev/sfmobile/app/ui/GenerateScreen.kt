package dev.sfmobile.app.ui

import androidx.compose.foundation.Image
import androidx.compose.foundation.layout.Arrangement
import androidx.compose.foundation.layout.Column
import androidx.compose.foundation.layout.Row
import androidx.compose.foundation.layout.fillMaxSize
import androidx.compose.foundation.layout.fillMaxWidth
import androidx.compose.foundation.layout.padding
import androidx.compose.foundation.rememberScrollState
import androidx.compose.foundation.selection.selectable
import androidx.compose.foundation.text.KeyboardOptions
import androidx.compose.foundation.verticalScroll
import androidx.compose.material3.Button
import androidx.compose.material3.LinearProgressIndicator
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.OutlinedButton
import androidx.compose.material3.OutlinedTextField
import androidx.compose.material3.RadioButton
import androidx.compose.material3.Scaffold
import androidx.compose.material3.SnackbarHost
import androidx.compose.material3.SnackbarHostState
import androidx.compose.material3.Text
import androidx.compose.runtime.Composable
import androidx.compose.runtime.LaunchedEffect
import androidx.compose.runtime.getValue
import androidx.compose.runtime.remember
import androidx.compose.ui.Alignment
import androidx.compose.ui.Modifier
import androidx.compose.ui.graphics.asImageBitmap
import androidx.compose.ui.layout.ContentScale
import androidx.compose.ui.platform.LocalContext
import androidx.compose.ui.semantics.Role
import androidx.compose.ui.text.input.KeyboardType
import androidx.compose.ui.unit.dp
import androidx.lifecycle.compose.collectAsStateWithLifecycle
import dev.sfmobile.app.gallery.ImageExport
import dev.sfmobile.app.generation.GenerationResult
import dev.sfmobile.core.Timings
import dev.sfmobile.core.device.Backend
import java.util.Locale

/** The one screen, bound to its ViewModel. */
@Composable
fun GenerateRoute(viewModel: GenerateViewModel) {
    val form by viewModel.form.collectAsStateWithLifecycle()
    val state by viewModel.uiState.collectAsStateWithLifecycle()
    val context = LocalContext.current
    GenerateScreen(
        form = form,
        state = state,
        onForm = viewModel::edit,
        onBundle = viewModel::selectBundle,
        onBackend = viewModel::selectBackend,
        onRefresh = viewModel::refreshBundles,
        onGenerate = viewModel::generate,
        onCancel = viewModel::cancel,
        onSave = viewModel::saveToGallery,
        onShare = { ImageExport.share(context, it.png) },
        onNoticeShown = viewModel::dismissNotice,
    )
}

/** Renders [form] and [state]; every change goes back through the callbacks. */
@Composable
fun GenerateScreen(
    form: FormState,
    state: UiState,
    onForm: (FormState.() -> FormState) -> Unit,
    onBundle: (String) -> Unit,
    onBackend: (Backend) -> Unit,
    onRefresh: () -> Unit,
    onGenerate: () -> Unit,
    onCancel: () -> Unit,
    onSave: (GenerationResult) -> Unit,
    onShare: (GenerationResult) -> Unit,
    onNoticeShown: () -> Unit,
) {
    val snackbar = remember { SnackbarHostState() }
    LaunchedEffect(form.notice) {
        form.notice?.let {
            snackbar.showSnackbar(it)
            onNoticeShown()
        }
    }
    val busy = state is UiState.LoadingBundle || state is UiState.Generating
    Scaffold(snackbarHost = { SnackbarHost(snackbar) }) { padding ->
        Column(
            Modifier
                .fillMaxSize()
                .padding(padding)
                .padding(16.dp)
                .verticalScroll(rememberScrollState()),
            verticalArrangement = Arrangement.spacedBy(12.dp),
        ) {
            Text("sfmobile", style = MaterialTheme.typography.headlineSmall)
            BundleChoice(form, busy, onBundle, onRefresh)
            Section("Backend")
            for (backend in form.backends) {
                Choice(backend.label, backend == form.backend, !busy) { onBackend(backend) }
            }
            Fields(form, busy, onForm)
            form.error?.let { Text(it, color = MaterialTheme.colorScheme.error) }
            if (busy) {
                OutlinedButton(onClick = onCancel, modifier = Modifier.fillMaxWidth()) { Text("Cancel") }
            } else {
                Button(onClick = onGenerate, enabled = form.bundle != null, modifier = Modifier.fillMaxWidth()) { Text("Generate") }
            }
            Status(state, onSave, onShare)
        }
    }
}

@Composable
private fun BundleChoice(
    form: FormState,
    busy: Boolean,
    onBundle: (String) -> Unit,
    onRefresh: () -> Unit,
) {
    Row(verticalAlignment = Alignment.CenterVertically) {
        Section("Bundle", Modifier.weight(1f))
        OutlinedButton(onClick = onRefresh, enabled = !busy) { Text("Refresh") }
    }
    if (form.bundles.isEmpty()) {
        Text("No bundle yet. Push one with adb into ${form.bundlesFolder}/NAME/ and press Refresh.")
    }
    for (summary in form.bundles) {
        val size = String.format(Locale.ROOT, "%.2f GiB", summary.entry.bytes / (1024.0 * 1024.0 * 1024.0))
        Choice("${summary.name} (${summary.format ?: "?"}, $size)", summary.name == form.bundle, !busy && summary.problem == null) {
            onBundle(summary.name)
        }
        summary.problem?.let { Text(it, color = MaterialTheme.colorScheme.error, style = MaterialTheme.typography.bodySmall) }
    }
}

@Composable
private fun Fields(
    form: FormState,
    busy: Boolean,
    onForm: (FormState.() -> FormState) -> Unit,
) {
    OutlinedTextField(
        value = form.prompt,
        onValueChange = { text -> onForm { copy(prompt = text) } },
        label = { Text("Prompt") },
        enabled = !busy,
        modifier = Modifier.fillMaxWidth(),
    )
    OutlinedTextField(
        value = form.negativePrompt,
        onValueChange = { text -> onForm { copy(negativePrompt = text) } },
        label = { Text("Negative prompt") },
        enabled = !busy,
        modifier = Modifier.fillMaxWidth(),
    )
    Row(horizontalArrangement = Arrangement.spacedBy(8.dp)) {
        NumberField("Steps", form.steps, !busy, KeyboardType.Number, Modifier.weight(1f)) { text -> onForm { copy(steps = text) } }
        NumberField(
            "Guidance",
            form.guidance,
            !busy,
            KeyboardType.Decimal,
            Modifier.weight(1f),
        ) { text -> onForm { copy(guidance = text) } }
        NumberField("Seed", form.seed, !busy, KeyboardType.Number, Modifier.weight(1.5f)) { text -> onForm { copy(seed = text) } }
    }
    form.guidanceWarning?.let { Text(it, color = MaterialTheme.colorScheme.tertiary, style = MaterialTheme.typography.bodySmall) }
}

@Composable
private fun Status(
    state: UiState,
    onSave: (GenerationResult) -> Unit,
    onShare: (GenerationResult) -> Unit,
) {
    when (state) {
        UiState.Idle -> {
            Unit
        }

        is UiState.LoadingBundle -> {
            Text("Loading ${state.bundle}")
            LinearProgressIndicator(Modifier.fillMaxWidth())
        }

        is UiState.Generating -> {
            Text("Step ${state.step} of ${state.total}")
            LinearProgressIndicator(progress = { state.step.toFloat() / state.total }, modifier = Modifier.fillMaxWidth())
        }

        is UiState.Failed -> {
            Text(state.message, color = MaterialTheme.colorScheme.error)
        }

        is UiState.Done -> {
            val result = state.result
            Image(
                bitmap = result.image.asImageBitmap(),
                contentDescription = result.job.request.prompt,
                contentScale = ContentScale.FillWidth,
                modifier = Modifier.fillMaxWidth(),
            )
            Row(horizontalArrangement = Arrangement.spacedBy(8.dp)) {
                Button(onClick = { onSave(result) }) { Text("Save to gallery") }
                OutlinedButton(onClick = { onShare(result) }) { Text("Share") }
            }
            Text("${result.job.bundle} on ${result.job.backend.id}", style = MaterialTheme.typography.labelLarge)
            for (line in timingLines(result.timings)) Text(line, style = MaterialTheme.typography.bodySmall)
        }
    }
}

@Composable
private fun Section(
    title: String,
    modifier: Modifier = Modifier,
) = Text(title, style = MaterialTheme.typography.titleMedium, modifier = modifier)

@Composable
private fun Choice(
    label: String,
    selected: Boolean,
    enabled: Boolean,
    onSelect: () -> Unit,
) {
    Row(
        Modifier
            .fillMaxWidth()
            .selectable(selected = selected, enabled = enabled, role = Role.RadioButton, onClick = onSelect),
        verticalAlignment = Alignment.CenterVertically,
    ) {
        RadioButton(selected = selected, onClick = null, enabled = enabled)
        Text(label, Modifier.padding(start = 8.dp))
    }
}

@Composable
private fun NumberField(
    label: String,
    value: String,
    enabled: Boolean,
    keyboard: KeyboardType,
    modifier: Modifier,
    onChange: (String) -> Unit,
) = OutlinedTextField(
    value = value,
    onValueChange = onChange,
    label = { Text(label) },
    enabled = enabled,
    singleLine = true,
    keyboardOptions = KeyboardOptions(keyboardType = keyboard),
    modifier = modifier,
)

/** The run's stage times, one line each, as the benchmark JSON names them. */
private fun timingLines(t: Timings): List<String> {
    fun ms(value: Double) = String.format(Locale.ROOT, "%.0f ms", value)
    val unet = t.unetMs.sum()
    val each = if (t.unetMs.isEmpty()) "" else " (${t.unetMs.size} calls, ${ms(unet / t.unetMs.size)} each)"
    return listOf(
        "tokenize ${ms(t.tokenizeMs)}",
        "text encoder ${ms(t.textEncoderMs)}",
        "UNet ${ms(unet)}$each",
        "scheduler ${ms(t.schedulerMs)}",
        "decoder ${ms(t.decoderMs)}",
        "total ${ms(t.totalMs)}",
    )
}

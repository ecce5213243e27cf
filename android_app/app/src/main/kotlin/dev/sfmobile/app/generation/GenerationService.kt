package dev.sfmobile.app.generation

import android.app.Service
import android.content.ComponentCallbacks2
import android.content.Context
import android.content.Intent
import android.content.pm.ServiceInfo
import android.os.Build
import android.os.IBinder
import androidx.core.app.ServiceCompat
import dev.sfmobile.core.GenerationRequest
import dev.sfmobile.core.device.Backend
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.Job
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.cancel
import kotlinx.coroutines.launch

/**
 * Runs a generation as a foreground service, so it goes on when the user leaves the screen, with
 * a notification that shows the step and cancels. One job at a time; it stops itself when done.
 */
class GenerationService : Service() {
    private val scope = CoroutineScope(SupervisorJob() + Dispatchers.Default)
    private var running: Job? = null
    private lateinit var notifications: GenerationNotifications

    override fun onCreate() {
        super.onCreate()
        notifications = GenerationNotifications(this)
    }

    override fun onBind(intent: Intent?): IBinder? = null

    override fun onStartCommand(
        intent: Intent?,
        flags: Int,
        startId: Int,
    ): Int {
        if (intent?.action == ACTION_CANCEL) {
            GenerationRepository.cancel()
            return START_NOT_STICKY
        }
        val job = intent?.toJob()
        goForeground(job?.bundle ?: "")
        if (job == null || running?.isActive == true) {
            if (running?.isActive != true) stopSelf(startId)
            return START_NOT_STICKY
        }
        running =
            scope.launch {
                val updates = launch { GenerationRepository.status.collect { notifications.show(it) } }
                GenerationRepository.run(applicationContext, job)
                updates.cancel()
                ServiceCompat.stopForeground(this@GenerationService, ServiceCompat.STOP_FOREGROUND_REMOVE)
                stopSelf()
            }
        return START_NOT_STICKY
    }

    override fun onTrimMemory(level: Int) {
        super.onTrimMemory(level)
        if (level >= ComponentCallbacks2.TRIM_MEMORY_RUNNING_CRITICAL && running?.isActive != true) {
            GenerationRepository.release()
        }
    }

    override fun onDestroy() {
        GenerationRepository.cancel()
        scope.cancel()
        super.onDestroy()
    }

    private fun goForeground(bundle: String) {
        val notification = notifications.build(GenerationStatus.Loading(bundle))
        if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.UPSIDE_DOWN_CAKE) {
            startForeground(GenerationNotifications.ID, notification, ServiceInfo.FOREGROUND_SERVICE_TYPE_SPECIAL_USE)
        } else {
            startForeground(GenerationNotifications.ID, notification)
        }
    }

    companion object {
        private const val ACTION_GENERATE = "dev.sfmobile.app.GENERATE"
        internal const val ACTION_CANCEL = "dev.sfmobile.app.CANCEL"

        /** Starts [job] in the service (the app is in the foreground: the user pressed Generate). */
        fun start(
            context: Context,
            job: GenerationJob,
        ) {
            val intent =
                Intent(context, GenerationService::class.java)
                    .setAction(ACTION_GENERATE)
                    .putExtra("bundle", job.bundle)
                    .putExtra("backend", job.backend.id)
                    .putExtra("prompt", job.request.prompt)
                    .putExtra("negative_prompt", job.request.negativePrompt)
                    .putExtra("steps", job.request.steps)
                    .putExtra("guidance", job.request.guidance)
                    .putExtra("seed", job.request.seed)
            context.startForegroundService(intent)
        }

        fun cancel(context: Context) {
            context.startService(Intent(context, GenerationService::class.java).setAction(ACTION_CANCEL))
        }

        private fun Intent.toJob(): GenerationJob? {
            if (action != ACTION_GENERATE) return null
            val bundle = getStringExtra("bundle") ?: return null
            val backend = Backend.entries.firstOrNull { it.id == getStringExtra("backend") } ?: return null
            val request =
                GenerationRequest(
                    prompt = getStringExtra("prompt") ?: return null,
                    negativePrompt = getStringExtra("negative_prompt") ?: "",
                    steps = getIntExtra("steps", 0),
                    guidance = getFloatExtra("guidance", 0f),
                    seed = getLongExtra("seed", 0L),
                )
            return GenerationJob(bundle, backend, request)
        }
    }
}

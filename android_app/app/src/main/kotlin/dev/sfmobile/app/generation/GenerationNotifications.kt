package dev.sfmobile.app.generation

import android.app.Notification
import android.app.NotificationChannel
import android.app.NotificationManager
import android.app.PendingIntent
import android.content.Context
import android.content.Intent
import androidx.core.app.NotificationCompat
import androidx.core.app.NotificationManagerCompat
import dev.sfmobile.app.MainActivity
import dev.sfmobile.app.R

/** The ongoing notification of the generation service: loading, step k of n, a Cancel action. */
internal class GenerationNotifications(
    private val context: Context,
) {
    init {
        val channel =
            NotificationChannel(CHANNEL, context.getString(R.string.channel_generation), NotificationManager.IMPORTANCE_LOW)
        context.getSystemService(NotificationManager::class.java).createNotificationChannel(channel)
    }

    fun build(status: GenerationStatus): Notification {
        val builder =
            NotificationCompat
                .Builder(context, CHANNEL)
                .setSmallIcon(android.R.drawable.ic_menu_gallery)
                .setContentTitle(context.getString(R.string.app_name))
                .setOngoing(true)
                .setOnlyAlertOnce(true)
                .setContentIntent(openApp())
                .addAction(0, context.getString(R.string.notification_cancel), cancel())
        when (status) {
            is GenerationStatus.Loading -> {
                builder.setContentText(context.getString(R.string.notification_loading, status.bundle)).setProgress(0, 0, true)
            }

            is GenerationStatus.Running -> {
                builder
                    .setContentText(context.getString(R.string.notification_step, status.step, status.total))
                    .setProgress(status.total, status.step, false)
            }

            else -> {
                builder.setProgress(0, 0, false)
            }
        }
        return builder.build()
    }

    /** Updates the notification while the service is in the foreground (permission may be denied: then nothing shows). */
    fun show(status: GenerationStatus) {
        if (status !is GenerationStatus.Loading && status !is GenerationStatus.Running) return
        val manager = NotificationManagerCompat.from(context)
        if (manager.areNotificationsEnabled()) {
            try {
                manager.notify(ID, build(status))
            } catch (e: SecurityException) {
                // POST_NOTIFICATIONS revoked while running: the service keeps going without updates.
            }
        }
    }

    private fun openApp(): PendingIntent =
        PendingIntent.getActivity(
            context,
            0,
            Intent(context, MainActivity::class.java).addFlags(Intent.FLAG_ACTIVITY_SINGLE_TOP),
            PendingIntent.FLAG_IMMUTABLE,
        )

    private fun cancel(): PendingIntent =
        PendingIntent.getService(
            context,
            1,
            Intent(context, GenerationService::class.java).setAction(GenerationService.ACTION_CANCEL),
            PendingIntent.FLAG_IMMUTABLE,
        )

    companion object {
        const val ID = 1
        private const val CHANNEL = "generation"
    }
}

; Gatehouse's Windows installer, made by NSIS 3 (Debian's nsis: makensis).
; packaging/windows/build.sh (make package-windows) defines VERSION,
; APP_BUILD, EXE, LICENSE_FILE, ICON and OUTFILE.
;
; - Per user, no administrator rights: the program goes to
;   %LOCALAPPDATA%\Programs\Gatehouse, every registry value to HKCU.
; - A Start-menu shortcut; optionally, Gatehouse starts at sign-in (the
;   value "Gatehouse" under HKCU\...\CurrentVersion\Run). An upgrade keeps
;   the earlier choice.
; - Silent: `setup.exe /S` installs with the defaults (shortcut, no start at
;   sign-in); /AUTOSTART=yes|no and /SHORTCUT=yes|no choose; /D=DIR (last)
;   sets the folder.
; - The uninstaller (Apps & features, or uninstall.exe [/S]) quits a
;   running Gatehouse, removes the program, its shortcut, its Run value and
;   its Apps & features entry. It asks before removing the settings
;   (%APPDATA%\gatehouse: config.toml; %LOCALAPPDATA%\gatehouse: usage
;   totals; %APPDATA%\fyne\<app id>: window preferences) and before
;   deleting the keys, certificates and passwords in Windows Credential
;   Manager (`gatehouse forget-secrets --yes`); both answers default to No
;   and silent uninstalls keep both, unless /REMOVESETTINGS or /REMOVEKEYS
;   is given.

Unicode true
ManifestDPIAware true
RequestExecutionLevel user
SetCompressor /SOLID lzma
CRCCheck on

!include MUI2.nsh
!include LogicLib.nsh
!include FileFunc.nsh
!include Sections.nsh
!include StrFunc.nsh

!define APP_ID "io.github.gatehouse_app.gatehouse"
!define UNINSTALL_KEY "Software\Microsoft\Windows\CurrentVersion\Uninstall\Gatehouse"
!define RUN_KEY "Software\Microsoft\Windows\CurrentVersion\Run"
!define PUBLISHER "The Gatehouse developers"
!define HOMEPAGE "https://github.com/gatehouse-app/gatehouse"

Name "Gatehouse"
OutFile "${OUTFILE}"
InstallDir "$LOCALAPPDATA\Programs\Gatehouse"
InstallDirRegKey HKCU "${UNINSTALL_KEY}" "InstallLocation"
BrandingText "Gatehouse ${VERSION}"
ShowInstDetails nevershow
ShowUninstDetails nevershow

VIProductVersion "${VERSION}.${APP_BUILD}"
VIFileVersion "${VERSION}.${APP_BUILD}"
VIAddVersionKey /LANG=0 "ProductName" "Gatehouse"
VIAddVersionKey /LANG=0 "ProductVersion" "${VERSION}"
VIAddVersionKey /LANG=0 "FileVersion" "${VERSION}.${APP_BUILD}"
VIAddVersionKey /LANG=0 "FileDescription" "Gatehouse Setup"
VIAddVersionKey /LANG=0 "CompanyName" "${PUBLISHER}"
VIAddVersionKey /LANG=0 "LegalCopyright" "MIT License, ${PUBLISHER}"

!define MUI_ICON "${ICON}"
!define MUI_UNICON "${ICON}"
!define MUI_ABORTWARNING
!define MUI_COMPONENTSPAGE_SMALLDESC
!define MUI_FINISHPAGE_RUN "$INSTDIR\gatehouse.exe"

!insertmacro MUI_PAGE_LICENSE "${LICENSE_FILE}"
!insertmacro MUI_PAGE_COMPONENTS
!insertmacro MUI_PAGE_DIRECTORY
!insertmacro MUI_PAGE_INSTFILES
!insertmacro MUI_PAGE_FINISH
!insertmacro MUI_UNPAGE_CONFIRM
!insertmacro MUI_UNPAGE_INSTFILES

; The installer speaks the languages Gatehouse does; Windows' display
; language chooses.
!insertmacro MUI_LANGUAGE "English"
!insertmacro MUI_LANGUAGE "SimpChinese"

LangString SecAppName ${LANG_ENGLISH} "Gatehouse"
LangString SecAppName ${LANG_SIMPCHINESE} "Gatehouse"
LangString SecAppDesc ${LANG_ENGLISH} "The program: the window, the tray icon and the forwarder."
LangString SecAppDesc ${LANG_SIMPCHINESE} "程序本身：窗口、托盘图标和转发器。"
LangString SecShortcutName ${LANG_ENGLISH} "Start menu shortcut"
LangString SecShortcutName ${LANG_SIMPCHINESE} "开始菜单快捷方式"
LangString SecShortcutDesc ${LANG_ENGLISH} "Gatehouse in the Start menu."
LangString SecShortcutDesc ${LANG_SIMPCHINESE} "在开始菜单中添加 Gatehouse。"
LangString SecAutostartName ${LANG_ENGLISH} "Start Gatehouse when I sign in"
LangString SecAutostartName ${LANG_SIMPCHINESE} "登录时启动 Gatehouse"
LangString SecAutostartDesc ${LANG_ENGLISH} "The forwarder is ready as soon as you sign in to Windows."
LangString SecAutostartDesc ${LANG_SIMPCHINESE} "登录 Windows 后转发器即可使用。"
LangString Running ${LANG_ENGLISH} "Gatehouse is running. Click OK to close it and go on (requests in progress are cut off), or Cancel to stop."
LangString Running ${LANG_SIMPCHINESE} "Gatehouse 正在运行。点击“确定”关闭它并继续（进行中的请求会被中断），或点击“取消”停止。"
LangString StillRunning ${LANG_ENGLISH} "Gatehouse is still running; quit it from its tray menu and try again."
LangString StillRunning ${LANG_SIMPCHINESE} "Gatehouse 仍在运行；请从托盘菜单退出后重试。"
LangString AskKeys ${LANG_ENGLISH} "Also delete the API keys, client certificates and proxy passwords Gatehouse keeps in Windows Credential Manager?$\r$\n$\r$\nThey cannot be recovered. Choose No to keep them for a later install."
LangString AskKeys ${LANG_SIMPCHINESE} "同时删除 Gatehouse 保存在 Windows 凭据管理器中的 API 密钥、客户端证书和代理密码吗？$\r$\n$\r$\n删除后无法恢复。选择“否”可保留它们，供以后重新安装使用。"
LangString KeysFailed ${LANG_ENGLISH} "The keys could not be deleted; remove the entries that begin with gatehouse: in Credential Manager."
LangString KeysFailed ${LANG_SIMPCHINESE} "无法删除密钥；请在凭据管理器中删除以 gatehouse: 开头的条目。"
LangString AskSettings ${LANG_ENGLISH} "Also remove your Gatehouse settings (config.toml and usage totals)?$\r$\n$\r$\nChoose No to keep them for a later install."
LangString AskSettings ${LANG_SIMPCHINESE} "同时删除 Gatehouse 的设置（config.toml 和用量统计）吗？$\r$\n$\r$\n选择“否”可保留它们，供以后重新安装使用。"

${StrStr}
${UnStrStr}

Var RemoveKeys
Var RemoveSettings

; QuitRunning closes this user's running Gatehouse, after asking: its
; files cannot be replaced or removed while it runs. tasklist names the
; image on each line it finds, and only then.
!macro QUIT_RUNNING un
Function ${un}QuitRunning
  ReadEnvStr $R2 USERNAME
  StrCpy $R3 0
  loop:
    nsExec::ExecToStack '"$SYSDIR\tasklist.exe" /NH /FO CSV /FI "IMAGENAME eq gatehouse.exe" /FI "USERNAME eq $R2"'
    Pop $R0
    Pop $R0
    !if "${un}" == "un."
      ${UnStrStr} $R1 $R0 "gatehouse.exe"
    !else
      ${StrStr} $R1 $R0 "gatehouse.exe"
    !endif
    ${If} $R1 == ""
      Return
    ${EndIf}
    ${If} $R3 == 0
      MessageBox MB_OKCANCEL|MB_ICONINFORMATION "$(Running)" /SD IDOK IDOK +2
      Quit
    ${ElseIf} $R3 > 20
      MessageBox MB_OK|MB_ICONSTOP "$(StillRunning)" /SD IDOK
      Quit
    ${EndIf}
    nsExec::Exec '"$SYSDIR\taskkill.exe" /F /IM gatehouse.exe /FI "USERNAME eq $R2"'
    Pop $R0
    IntOp $R3 $R3 + 1
    Sleep 500
    Goto loop
FunctionEnd
!macroend
!insertmacro QUIT_RUNNING ""
!insertmacro QUIT_RUNNING "un."

Section "$(SecAppName)" SecApp
  SectionIn RO
  SetOutPath "$INSTDIR"
  File "/oname=gatehouse.exe" "${EXE}"
  File "/oname=LICENSE.txt" "${LICENSE_FILE}"
  WriteUninstaller "$INSTDIR\uninstall.exe"

  ; Apps & features
  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayName" "Gatehouse"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayVersion" "${VERSION}"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayIcon" "$INSTDIR\gatehouse.exe,0"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "Publisher" "${PUBLISHER}"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "URLInfoAbout" "${HOMEPAGE}"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "InstallLocation" "$INSTDIR"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "UninstallString" '"$INSTDIR\uninstall.exe"'
  WriteRegStr HKCU "${UNINSTALL_KEY}" "QuietUninstallString" '"$INSTDIR\uninstall.exe" /S'
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "NoModify" 1
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "NoRepair" 1
  ${GetSize} "$INSTDIR" "/S=0K" $0 $1 $2
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "EstimatedSize" "$0"
SectionEnd

Section "$(SecShortcutName)" SecShortcut
  CreateShortCut "$SMPROGRAMS\Gatehouse.lnk" "$INSTDIR\gatehouse.exe" "" "$INSTDIR\gatehouse.exe" 0
SectionEnd

Section /o "$(SecAutostartName)" SecAutostart
  WriteRegStr HKCU "${RUN_KEY}" "Gatehouse" '"$INSTDIR\gatehouse.exe" --hidden'
SectionEnd

; What was left out this time is undone from an earlier install.
Section "-Unchosen"
  ${IfNot} ${SectionIsSelected} ${SecShortcut}
    Delete "$SMPROGRAMS\Gatehouse.lnk"
  ${EndIf}
  ${IfNot} ${SectionIsSelected} ${SecAutostart}
    DeleteRegValue HKCU "${RUN_KEY}" "Gatehouse"
  ${EndIf}
SectionEnd

!insertmacro MUI_FUNCTION_DESCRIPTION_BEGIN
  !insertmacro MUI_DESCRIPTION_TEXT ${SecApp} "$(SecAppDesc)"
  !insertmacro MUI_DESCRIPTION_TEXT ${SecShortcut} "$(SecShortcutDesc)"
  !insertmacro MUI_DESCRIPTION_TEXT ${SecAutostart} "$(SecAutostartDesc)"
!insertmacro MUI_FUNCTION_DESCRIPTION_END

; yes or no from /NAME=yes|no on the command line; $0 is left as it was
; when the option is absent.
!macro OPTION NAME SECTION
  ClearErrors
  ${GetOptions} $R0 "/${NAME}=" $R1
  ${IfNot} ${Errors}
    ${If} $R1 == "yes"
      !insertmacro SelectSection ${SECTION}
    ${ElseIf} $R1 == "no"
      !insertmacro UnselectSection ${SECTION}
    ${EndIf}
  ${EndIf}
!macroend

Function .onInit
  ; An earlier install that starts at sign-in keeps doing so.
  ReadRegStr $0 HKCU "${RUN_KEY}" "Gatehouse"
  ${If} $0 != ""
    !insertmacro SelectSection ${SecAutostart}
  ${EndIf}
  ${GetParameters} $R0
  !insertmacro OPTION AUTOSTART ${SecAutostart}
  !insertmacro OPTION SHORTCUT ${SecShortcut}
  Call QuitRunning
FunctionEnd

Function un.onInit
  StrCpy $RemoveKeys ""
  StrCpy $RemoveSettings ""
  ${GetParameters} $R0
  ClearErrors
  ${GetOptions} $R0 "/REMOVEKEYS" $R1
  ${IfNot} ${Errors}
    StrCpy $RemoveKeys 1
  ${EndIf}
  ClearErrors
  ${GetOptions} $R0 "/REMOVESETTINGS" $R1
  ${IfNot} ${Errors}
    StrCpy $RemoveSettings 1
  ${EndIf}
FunctionEnd

Section "Uninstall"
  Call un.QuitRunning

  ; Asked unless the command line said so; silent uninstalls keep both.
  ${If} $RemoveKeys == ""
    StrCpy $RemoveKeys 0
    MessageBox MB_YESNO|MB_ICONQUESTION|MB_DEFBUTTON2 "$(AskKeys)" /SD IDNO IDNO +2
    StrCpy $RemoveKeys 1
  ${EndIf}
  ${If} $RemoveKeys == 1
    nsExec::ExecToLog '"$INSTDIR\gatehouse.exe" forget-secrets --yes'
    Pop $0
    ${If} $0 != 0
      MessageBox MB_OK|MB_ICONEXCLAMATION "$(KeysFailed)" /SD IDOK
    ${EndIf}
  ${EndIf}

  ${If} $RemoveSettings == ""
    StrCpy $RemoveSettings 0
    MessageBox MB_YESNO|MB_ICONQUESTION|MB_DEFBUTTON2 "$(AskSettings)" /SD IDNO IDNO +2
    StrCpy $RemoveSettings 1
  ${EndIf}
  ${If} $RemoveSettings == 1
    RMDir /r "$APPDATA\gatehouse"
    RMDir /r "$LOCALAPPDATA\gatehouse"
    RMDir /r "$APPDATA\fyne\${APP_ID}"
    RMDir "$APPDATA\fyne"
  ${EndIf}

  Delete "$INSTDIR\gatehouse.exe"
  Delete "$INSTDIR\LICENSE.txt"
  Delete "$INSTDIR\uninstall.exe"
  RMDir "$INSTDIR"
  Delete "$SMPROGRAMS\Gatehouse.lnk"
  DeleteRegValue HKCU "${RUN_KEY}" "Gatehouse"
  DeleteRegKey HKCU "${UNINSTALL_KEY}"
SectionEnd
